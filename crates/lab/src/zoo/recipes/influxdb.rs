//! The zoo's influxdb recipe.

use crate::zoo::*;

pub(in crate::zoo) fn influxdb(ctx: &Ctx) -> Result<Vec<Plan>, LabError> {
    let data = ctx.mkdir("influxdb", 0o700)?;
    let conf = ctx.write(
        "influxdb.conf",
        &format!(
            "reporting-disabled = true\nbind-address = \"{v4}:8088\"\n\
             [meta]\n  dir = \"{data}/meta\"\n\
             [data]\n  dir = \"{data}/data\"\n  wal-dir = \"{data}/wal\"\n  query-log-enabled = false\n\
             [http]\n  bind-address = \"{v4}:8086\"\n  log-enabled = false\n\
             [monitor]\n  store-enabled = false\n",
            v4 = ctx.v4
        ),
    )?;
    let version = version_from_output(&["/usr/bin/influxd", "version"], "InfluxDB v")
        .or_else(|| installed_version("influxdb").map(|v| upstream_version(&v)));
    // X-Influxdb-Version keeps the pre-release suffix (`1.6.7~rc0`).
    let app_version = pkg_upstream_with_suffix("influxdb");
    Ok(vec![
        Plan::new("influxd", &["/usr/bin/influxd", "run", "-config", &conf])
            .serve(
                "influxdb",
                8086,
                Transport::Plain,
                "http",
                Some("InfluxDB"),
                version.as_deref(),
                None,
            )
            // Authentication off (the package default): queries and expvars
            // for anyone.
            .app(
                "influxdb",
                app_version.as_deref(),
                &["influxdb-query", "influxdb-debug-vars"],
                None,
            ),
    ])
}
