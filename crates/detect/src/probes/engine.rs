//! The engine: the null probe, then the likely probes and the rest in parallel, first hard match wins; every wait bounded.

use super::*;

// ---------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------

/// How long the null probe listens alone before the other probes are sent: services that
/// speak first do so at once, and most protocols are then identified without sending a
/// byte. The null probe keeps listening (up to its own `wait_ms`) after that.
pub(super) const NULL_GRACE: Duration = Duration::from_millis(300);

/// Probes in flight at once against one port (each on its own connection).
pub(super) const PARALLEL_PROBES: usize = 10;

/// What one probe got (`None` from [`run_probe`] when it could not connect).
pub(super) struct ProbeResponse {
    pub(super) hard: Option<(Detection, bool)>,
    pub(super) soft: Option<Detection>,
    pub(super) bytes: Vec<u8>,
}

/// Identify the service at `addr` with the probes of `db`.
///
/// The null probe listens first; after a short grace period (or at once when the service
/// stays silent and closes) the other probes follow in [`ProbeDb::order_for`] order, up
/// to [`PARALLEL_PROBES`] at a time, each on its own connection. The first hard match
/// wins. A provisional hard match (`follow_up = true`, e.g. a generic HTTP server) stops
/// the ordinary probes and sends the follow-up probes of its service (e.g. application
/// endpoints); the first of those (in database order) that hard-matches replaces it.
///
/// Never takes (much) longer than `opts.total_timeout`, keeps at most `opts.max_bytes` of
/// any response, and never panics on what the service sends. A port that refuses or does
/// not accept connections gives an empty [`Detection`].
pub async fn detect(addr: SocketAddr, db: &ProbeDb, opts: &DetectOptions) -> Detection {
    let deadline = Instant::now() + opts.total_timeout;
    let port = addr.port();
    let order: Vec<&Probe> = db
        .order_for(port)
        .into_iter()
        .filter(|p| opts.all_probes || p.is_null() || p.ports.contains(&port))
        .collect();
    let mut state = Collected::default();
    let mut pending = FuturesUnordered::new();
    let mut next = 0usize;
    // The null probes (normally one) start alone.
    while let Some(probe) = order.get(next).filter(|p| p.is_null()) {
        pending.push(indexed(next, run_probe(addr, probe, opts, deadline)));
        next += 1;
    }
    let grace = deadline.min(Instant::now() + NULL_GRACE);
    let mut refused = false;
    while !pending.is_empty() {
        match timeout_at(grace, pending.next()).await {
            Ok(Some((index, response))) => match state.take(index, response) {
                Outcome::Final(found) => return *found,
                Outcome::Provisional => break,
                Outcome::Refused => {
                    refused = true;
                    break;
                }
                Outcome::Continue => {}
            },
            Ok(None) | Err(_) => break,
        }
    }
    if !refused && state.provisional.is_none() {
        loop {
            while pending.len() < PARALLEL_PROBES && !refused && Instant::now() < deadline {
                let Some(probe) = order.get(next) else {
                    break;
                };
                pending.push(indexed(next, run_probe(addr, probe, opts, deadline)));
                next += 1;
            }
            let Some((index, response)) = pending.next().await else {
                break;
            };
            match state.take(index, response) {
                Outcome::Final(found) => return *found,
                Outcome::Provisional => break,
                Outcome::Refused => refused = true,
                Outcome::Continue => {}
            }
        }
    }
    // Stop whatever still runs (a provisional match settles the protocol).
    drop(pending);
    if let Some((found, _)) = state.provisional.take() {
        return refine(addr, db, opts, deadline, found).await;
    }
    state.finish()
}

/// Runs the follow-up probes for `provisional`'s service; the first hard match in database
/// order replaces `provisional`.
pub(super) async fn refine(
    addr: SocketAddr,
    db: &ProbeDb,
    opts: &DetectOptions,
    deadline: Instant,
    provisional: Detection,
) -> Detection {
    let Some(service) = provisional.service.as_deref() else {
        return provisional;
    };
    let probes = db.follow_ups(service);
    let mut best: Option<(usize, Detection)> = None;
    let mut next = 0usize;
    let mut pending = FuturesUnordered::new();
    loop {
        while pending.len() < PARALLEL_PROBES && Instant::now() < deadline {
            let Some(probe) = probes.get(next) else {
                break;
            };
            pending.push(indexed(next, run_probe(addr, probe, opts, deadline)));
            next += 1;
        }
        let Some((index, response)) = pending.next().await else {
            break;
        };
        let Some(ProbeResponse { hard, bytes, .. }) = response else {
            continue;
        };
        if let Some((mut found, _)) = hard
            && best.as_ref().is_none_or(|(i, _)| index < *i)
        {
            found.evidence = bytes.into();
            best = Some((index, found));
            // Nothing earlier in the order is still to come: done.
            if index == 0 {
                break;
            }
        }
    }
    best.map_or(provisional, |(_, found)| found)
}

/// Pairs a probe's result with its position in the order.
pub(super) async fn indexed<F: std::future::Future<Output = Option<ProbeResponse>>>(
    index: usize,
    run: F,
) -> (usize, Option<ProbeResponse>) {
    (index, run.await)
}

/// What one finished probe means for the detection.
pub(super) enum Outcome {
    /// A definitive answer.
    Final(Box<Detection>),
    /// A provisional hard match was recorded: go on with the follow-up probes.
    Provisional,
    /// The connection was refused: stop sending more probes.
    Refused,
    /// Nothing decisive: go on.
    Continue,
}

/// The results gathered so far, keyed by position in the order (earlier wins).
#[derive(Default)]
pub(super) struct Collected {
    pub(super) provisional: Option<(Detection, usize)>,
    pub(super) soft: Option<(Detection, usize)>,
    pub(super) first_bytes: Option<(Vec<u8>, usize)>,
}

impl Collected {
    pub(super) fn take(&mut self, index: usize, response: Option<ProbeResponse>) -> Outcome {
        let Some(ProbeResponse { hard, soft, bytes }) = response else {
            return Outcome::Refused;
        };
        if let Some((mut found, provisional)) = hard {
            found.evidence = bytes.into();
            if !provisional {
                return Outcome::Final(Box::new(found));
            }
            self.provisional = Some((found, index));
            return Outcome::Provisional;
        }
        if let Some(mut found) = soft
            && self.soft.as_ref().is_none_or(|(_, i)| index < *i)
        {
            found.evidence = bytes.clone().into();
            self.soft = Some((found, index));
        }
        if !bytes.is_empty() && self.first_bytes.as_ref().is_none_or(|(_, i)| index < *i) {
            self.first_bytes = Some((bytes, index));
        }
        Outcome::Continue
    }

    pub(super) fn finish(self) -> Detection {
        self.soft.map(|(d, _)| d).unwrap_or_else(|| Detection {
            evidence: self.first_bytes.map(|(b, _)| b).unwrap_or_default().into(),
            ..Detection::default()
        })
    }
}

pub(super) async fn run_probe(
    addr: SocketAddr,
    probe: &Probe,
    opts: &DetectOptions,
    deadline: Instant,
) -> Option<ProbeResponse> {
    let connect_deadline = deadline.min(Instant::now() + opts.connect_timeout);
    let mut stream = match timeout_at(connect_deadline, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        _ => return None,
    };
    let read_deadline = deadline.min(Instant::now() + probe.wait.min(opts.max_wait));
    if !probe.is_null() {
        // A failed write is not fatal: the service may have spoken before closing.
        let payload = probe.payload_for(addr);
        let _ = timeout_at(read_deadline, stream.write_all(&payload)).await;
    }
    let cap = opts.max_bytes;
    let mut bytes = Vec::with_capacity(cap.min(4096));
    let mut chunk = [0u8; 4096];
    while bytes.len() < cap {
        let want = chunk.len().min(cap - bytes.len());
        let Some(buf) = chunk.get_mut(..want) else {
            break;
        };
        match timeout_at(read_deadline, stream.read(buf)).await {
            Ok(Ok(n)) if n > 0 => {
                bytes.extend_from_slice(buf.get(..n).unwrap_or_default());
                // A definitive match ends the read at once; a provisional one (e.g. generic
                // HTTP headers) waits for the rest of the response, whose body may still
                // identify the application.
                if let Some(hard) = probe.hard_match_rule(&bytes).filter(|(_, prov)| !prov) {
                    return Some(ProbeResponse {
                        hard: Some(hard),
                        soft: None,
                        bytes,
                    });
                }
            }
            // EOF, error, or time is up.
            _ => break,
        }
    }
    if let Some(hard) = probe.hard_match_rule(&bytes) {
        return Some(ProbeResponse {
            hard: Some(hard),
            soft: None,
            bytes,
        });
    }
    let soft = probe.soft_match(&bytes);
    Some(ProbeResponse {
        hard: None,
        soft,
        bytes,
    })
}
