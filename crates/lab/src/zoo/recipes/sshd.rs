//! The zoo's sshd recipe.

use crate::zoo::*;

pub(in crate::zoo) fn sshd(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let key = ctx.path("ssh_host_ed25519_key");
    cmd::run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", &key])?;
    // Privilege separation needs this (empty, root-owned) directory.
    if !Path::new("/run/sshd").exists() {
        std::fs::create_dir_all("/run/sshd")
            .map_err(|source| io_err("creating /run/sshd", source))?;
        set_mode(Path::new("/run/sshd"), 0o755)?;
    }
    let conf = ctx.write(
        "sshd_config",
        &format!(
            "Port 22\nListenAddress {}\nListenAddress {}\nHostKey {key}\nPidFile {}\n\
             UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            ctx.v4,
            ctx.v6,
            ctx.path("sshd.pid")
        ),
    )?;
    let version = pkg_upstream("openssh-server");
    Ok(vec![
        Plan::new("sshd", &["/usr/sbin/sshd", "-D", "-e", "-f", &conf]).serve(
            "openssh-server",
            22,
            Transport::Plain,
            "ssh",
            Some("OpenSSH"),
            version.as_deref(),
            None,
        ),
    ])
}
