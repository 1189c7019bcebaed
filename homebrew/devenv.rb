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
    helper = OS.mac? ? "/Library/PrivilegedHelperTools" : "/usr/local/libexec/devenv"
    <<~EOS
      devenv serves your project's source tree to the minikube VM over NFS: `devenv up` adds one
      marked block per project to /etc/exports and reloads the NFS server, as root. Every line
      it writes, and how to undo it by hand, is in
        #{HOMEBREW_PREFIX}/share/doc/devenv/nfs.md

      To do that without a password prompt, run once:
        devenv onboard --exports-helper
      sudo asks for your password there, once: it copies #{opt_bin}/devenv-exports-helper to
      #{helper}/ (root-owned; never run from Homebrew's prefix, which you can write, so a
      sudoers rule naming it there would be root for anyone running as you), checks the sudoers
      rule with `sudo visudo -cf` and installs it as /etc/sudoers.d/devenv. That rule allows
      only the helper, which exports only directories you own, only to the VM's private
      address, always mapped to you. Run it again after `brew upgrade devenv`.
      Without it, devenv asks for your password each time it changes /etc/exports.

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
    assert_path_exists bin/"devenv-exports-helper"
    system bin/"devenv", "init"
    assert_path_exists testpath/"devenv.toml"
    assert_match "[project]", (testpath/"devenv.toml").read
  end
end
