# Reading a Linux exports file (exports(5)) in bash, for the test doubles: sourced by bin/minikube
# (whose modelled mount checks what the file exports) and vm/ganesha-reload (which serves it).
#
# exports_entries FILE: one line per (path, client, options) of the file, separated by \037 (a
# path may hold tabs), the path unescaped (quoted or bare, with exports(5)'s \ooo escapes);
# comments and blank lines skipped.
# With ONLY_DEVENV=1 only the lines inside devenv's "# BEGIN devenv ..." blocks are read.
exports_entries() {
  local file=$1 line path rest client inside=0
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      '# BEGIN devenv '*) inside=1; continue ;;
      '# END devenv '*) inside=0; continue ;;
      ''|'#'*) continue ;;
    esac
    [ "${ONLY_DEVENV:-0}" = 1 ] && [ "$inside" = 0 ] && continue
    if [ "${line:0:1}" = '"' ]; then
      path=${line#\"}; path=${path%%\"*}; rest=${line#\"*\"}
    else
      path=${line%%[[:space:]]*}; rest=${line#"$path"}
    fi
    path=$(printf '%b' "${path//\\/\\0}")
    for client in $rest; do
      case "$client" in
        *'('*) printf '%s\037%s\037%s\n' "$path" "${client%%(*}" "$(opts=${client#*\(}; printf '%s' "${opts%)}")" ;;
        *) printf '%s\037%s\037\n' "$path" "$client" ;;
      esac
    done
  done < "$file"
}

# exported_to FILE PATH IP: whether FILE exports PATH to IP, the address itself or a /24 holding
# it, as the server checks a mount request.
exported_to() {
  local file=$1 want=$2 ip=$3 path client opts
  while IFS=$'\037' read -r path client opts; do
    [ "$path" = "$want" ] || continue
    case "$client" in
      "$ip") return 0 ;;
      */24) [ "${client%.*}" = "${ip%.*}" ] && return 0 ;;
    esac
  done < <(exports_entries "$file")
  return 1
}
