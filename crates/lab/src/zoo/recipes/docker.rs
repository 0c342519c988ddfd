//! The zoo's Docker Engine recipe: dockerd with its own containerd, on
//! plain TCP.

use crate::zoo::*;

pub(in crate::zoo) fn docker(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let dir = ctx.mkdir("docker", 0o711)?;
    let data = ctx.mkdir("docker/data", 0o710)?;
    let exec = ctx.mkdir("docker/exec", 0o700)?;
    // Instead of /etc/docker/daemon.json; the only place that moves the
    // trust key out of /etc/docker/key.json.
    let config = ctx.write(
        "docker/daemon.json",
        &format!("{{\"deprecated-key-path\": \"{dir}/key.json\"}}\n"),
    )?;
    let tcp = format!("tcp://{}:2375", ctx.v4);
    let unix = format!("unix://{dir}/docker.sock");
    let pidfile = format!("{dir}/docker.pid");
    // The Server header and /version keep the repack suffix (`+dfsg1`).
    let version = pkg_upstream_with_suffix("docker.io");
    Ok(vec![
        Plan::new(
            "dockerd",
            &[
                "/usr/sbin/dockerd",
                "--config-file",
                &config,
                "--data-root",
                &data,
                "--exec-root",
                &exec,
                "--pidfile",
                &pidfile,
                "-H",
                &tcp,
                "-H",
                &unix,
                "--containerd-namespace",
                "portgate-zoo",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                // Plain TCP on purpose: said explicitly, dockerd skips the 15 s
                // pause it makes before listening without TLS.
                "--tls=false",
            ],
        )
        .host_mounts()
        .serve(
            "docker.io",
            2375,
            Transport::Plain,
            "http",
            Some("Docker"),
            version.as_deref(),
            Some("Engine API"),
        )
        .app(
            "docker-engine",
            version.as_deref(),
            &["docker-version", "docker-containers"],
            None,
        ),
    ])
}
