//! `--server URL`: the scan of `portgate scan` and `portgate check` done by a portgate
//! server (`portgate serve`), the rest — evaluation, outputs, exit codes — here, as without.

use crate::Failure;
use clap::Args;
use portgate_model::{PortSpec, ScanReport, TargetSpec};
use portgate_pipeline::{Error, RemoteScan};
use portgate_serve::{Client, ClientError, ScanRequest};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The environment variable that holds the API key for `--server`.
pub(crate) const KEY_ENV: &str = "PORTGATE_API_KEY";

#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// Have this portgate server (`portgate serve`) scan, with the API key in
    /// $PORTGATE_API_KEY; outputs and exit codes are as without.
    #[arg(long, value_name = "URL", env = "PORTGATE_SERVER")]
    pub(crate) server: Option<String>,

    /// With --server: how long to wait for the server's scan (exit 3 after).
    #[arg(long, default_value = "5m", value_parser = crate::args::parse_duration, value_name = "DURATION", requires = "server")]
    pub(crate) wait: Duration,
}

/// The server's client, when `--server` is given.
pub(crate) fn remote(args: &ServerArgs) -> Result<Option<Remote>, Failure> {
    let Some(url) = &args.server else {
        return Ok(None);
    };
    let key = std::env::var(KEY_ENV)
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Failure::usage(format!("--server needs the API key in ${KEY_ENV}")))?;
    let client = Client::new(url, &key).map_err(failure)?;
    Ok(Some(Remote {
        client,
        wait: args.wait,
    }))
}

fn failure(e: ClientError) -> Failure {
    error_of(e).into()
}

/// A refusal is the input's fault (exit 2); anything else on the server's side is not (3).
fn error_of(e: ClientError) -> Error {
    if e.is_input() {
        Error::Input(e.to_string())
    } else {
        Error::Server(e.to_string())
    }
}

/// A server that scans, and how long to wait for it.
pub(crate) struct Remote {
    client: Client,
    wait: Duration,
}

impl Remote {
    /// Scans `targets` on `ports` on the server.
    pub(crate) async fn scan(
        &self,
        ports: &PortSpec,
        targets: &[TargetSpec],
        detect: bool,
        deadline: Option<Duration>,
    ) -> Result<ScanReport, Error> {
        let request = ScanRequest {
            targets: targets.iter().map(ToString::to_string).collect(),
            ports: ports.to_string(),
            detect,
            try_default_credentials: false,
            udp: false,
            timeout: deadline.map(|d| d.as_secs().max(1)),
        };
        self.client
            .scan(&request, self.wait)
            .await
            .map_err(error_of)
    }
}

impl RemoteScan for Remote {
    fn scan<'a>(
        &'a self,
        ports: &'a PortSpec,
        targets: &'a [TargetSpec],
        deadline: Option<Duration>,
    ) -> Pin<Box<dyn Future<Output = Result<ScanReport, Error>> + Send + 'a>> {
        Box::pin(Remote::scan(self, ports, targets, true, deadline))
    }
}
