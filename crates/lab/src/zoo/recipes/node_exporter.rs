//! The zoo's node exporter recipe.

use crate::zoo::*;

pub(in crate::zoo) fn node_exporter(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let listen = format!("--web.listen-address={}:9100", ctx.v4);
    let version = pkg_upstream("prometheus-node-exporter");
    Ok(vec![
        Plan::new(
            "node-exporter",
            &["/usr/bin/prometheus-node-exporter", &listen],
        )
        .serve(
            "prometheus-node-exporter",
            9100,
            Transport::Plain,
            "http",
            Some("Prometheus Node Exporter"),
            version.as_deref(),
            None,
        )
        // `/metrics` answers without credentials.
        .app(
            "node-exporter",
            version.as_deref(),
            &["node-exporter-metrics"],
            None,
        ),
    ])
}
