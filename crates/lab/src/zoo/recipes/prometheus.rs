//! The zoo's prometheus recipe.

use crate::zoo::*;

pub(in crate::zoo) fn prometheus(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let data = ctx.mkdir("prometheus", 0o700)?;
    // One scrape job (the zoo's node exporter): /api/v1/targets has a target.
    let conf = ctx.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: node\n    \
             static_configs:\n      - targets: ['{v4}:9100']\n",
            v4 = ctx.v4
        ),
    )?;
    let config = format!("--config.file={conf}");
    let storage = format!("--storage.tsdb.path={data}");
    let listen = format!("--web.listen-address={}:9090", ctx.v4);
    // /api/v1/status/buildinfo keeps the repack suffix (`2.42.0+ds`).
    let version = pkg_upstream_with_suffix("prometheus");
    Ok(vec![
        Plan::new(
            "prometheus",
            &["/usr/bin/prometheus", &config, &storage, &listen],
        )
        .serve(
            "prometheus",
            9090,
            Transport::Plain,
            "http",
            Some("Prometheus"),
            version.as_deref(),
            None,
        )
        .app(
            "prometheus",
            version.as_deref(),
            &["prometheus-targets", "prometheus-config"],
            None,
        ),
    ])
}
