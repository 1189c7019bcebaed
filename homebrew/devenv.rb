# Homebrew formula for devenv, built from source with cargo.
#
# Why there is no sha256 line yet: Homebrew checks the release tarball against the checksum
# written here, and the tarball this `url` names only exists once the v0.1.0 tag is pushed;
# GitHub generates it then, from the tagged commit. A checksum computed today from a local
# `git archive` would describe a file nobody has downloaded, and would be wrong as soon as
# another commit landed before the tag. So the release adds it (`brew bump-formula-pr`, or
# `shasum -a 256` of the downloaded tarball), and until then this formula installs the
# development version with `brew install --HEAD`.
#
# homebrew-core already has an unrelated formula called devenv, so this one is installed from
# the project's own tap.
class Devenv < Formula
  desc "Same local Kubernetes environment on every laptop: minikube, NFS and Helm"
  homepage "https://github.com/devenv-dev/devenv"
  url "https://github.com/devenv-dev/devenv/archive/refs/tags/v0.1.0.tar.gz"
  license "Apache-2.0"
  head "https://github.com/devenv-dev/devenv.git", branch: "main"

  depends_on "rust" => :build
  depends_on "helm"
  depends_on "kubernetes-cli"
  depends_on "minikube"

  def install
    system "cargo", "install", *std_cargo_args
    generate_completions_from_executable(bin/"devenv", "completions")
    pkgshare.install "templates/sudoers.macos", "templates/sudoers.linux"
    doc.install Dir["docs/*.md"]
  end

  def caveats
    snippet = OS.mac? ? "sudoers.macos" : "sudoers.linux"
    <<~EOS
      devenv serves your project's source tree to the minikube VM over NFS: `devenv up` adds one
      marked block per project to /etc/exports and reloads the NFS server, with sudo. Every line
      it writes, and how to undo it by hand, is in
        #{HOMEBREW_PREFIX}/share/doc/devenv/nfs.md

      To spare the password prompt, a sudoers snippet allows exactly those commands and nothing
      else. `devenv onboard` shows it and installs it only if you say yes; to install it yourself:
        sudo visudo -cf #{opt_pkgshare}/#{snippet}
        sudo install -m 0440 #{opt_pkgshare}/#{snippet} /etc/sudoers.d/devenv

      Next: `devenv onboard` installs the VM driver and checks this machine.
    EOS
  end

  test do
    output = shell_output("#{bin}/devenv --version")
    if version.head?
      assert_match(/^devenv \d+\.\d+\.\d+$/, output)
    else
      assert_equal "devenv #{version}\n", output
    end
    system bin/"devenv", "init"
    assert_path_exists testpath/"devenv.toml"
    assert_match "[project]", (testpath/"devenv.toml").read
  end
end
