//! The zoo's etcd recipe.

use crate::zoo::*;

pub(in crate::zoo) fn etcd(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let data = ctx.mkdir("etcd", 0o700)?;
    let client = format!("http://{}:2379", ctx.v4);
    let peer = format!("http://{}:2380", ctx.v4);
    let cluster = format!("zoo={peer}");
    let version = pkg_upstream("etcd-server");
    Ok(vec![
        Plan::new(
            "etcd",
            &[
                "/usr/bin/etcd",
                "--name",
                "zoo",
                "--data-dir",
                &data,
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &cluster,
                // The v2 API (off by default in 3.4): an exposure check reads
                // /v2/keys.
                "--enable-v2=true",
            ],
        )
        // No Server header; the version is in /version's JSON.
        .serve(
            "etcd-server",
            2379,
            Transport::Plain,
            "http",
            None,
            None,
            None,
        )
        .app(
            "etcd",
            version.as_deref(),
            &["etcd-client-api", "etcd-v2-keys"],
            None,
        ),
    ])
}
