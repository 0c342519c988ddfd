//! The zoo's alertmanager recipe.

use crate::zoo::*;

pub(in crate::zoo) fn alertmanager(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let data = ctx.mkdir("alertmanager", 0o700)?;
    let conf = ctx.write(
        "alertmanager.yml",
        "route:\n  receiver: default\nreceivers:\n  - name: default\n",
    )?;
    let config = format!("--config.file={conf}");
    let storage = format!("--storage.path={data}");
    let listen = format!("--web.listen-address={}:9093", ctx.v4);
    let version = pkg_upstream("prometheus-alertmanager");
    Ok(vec![
        Plan::new(
            "alertmanager",
            &[
                "/usr/bin/prometheus-alertmanager",
                &config,
                &storage,
                &listen,
                // No gossip cluster (it would listen on 0.0.0.0:9094).
                "--cluster.listen-address=",
            ],
        )
        // No Server header, no version on `/` (the Debian placeholder page).
        .serve(
            "prometheus-alertmanager",
            9093,
            Transport::Plain,
            "http",
            None,
            None,
            None,
        )
        .app(
            "alertmanager",
            version.as_deref(),
            &["alertmanager-alerts"],
            None,
        ),
    ])
}
