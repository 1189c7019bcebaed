{{/* Labels shared by every object of this subchart. */}}
{{- define "search.labels" -}}
{{ include "search.selectorLabels" . }}
app.kubernetes.io/part-of: {{ (.Values.global).partOf | default "shop" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "search.selectorLabels" -}}
app.kubernetes.io/name: search
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
