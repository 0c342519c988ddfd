//! The probe database: probes and their matches, loaded from TOML with line and column in every error.

use super::*;

// ---------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------

/// One match rule of a probe.
#[derive(Debug, Clone)]
pub struct Match {
    pub(super) regex: Regex,
    pub(super) service: String,
    pub(super) soft: bool,
    pub(super) product: Option<Template>,
    pub(super) version: Option<Template>,
    pub(super) info: Option<Template>,
    pub(super) cpe: Option<Template>,
    pub(super) follow_up: bool,
}

impl Match {
    /// The service this rule identifies.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether this is a soft match (service only, probing goes on).
    pub fn is_soft(&self) -> bool {
        self.soft
    }

    /// Whether this hard match is provisional: the follow-up probes for its
    /// service are sent, and a hard match of theirs replaces it.
    pub fn is_follow_up(&self) -> bool {
        self.follow_up
    }

    pub(super) fn apply(&self, response: &[u8], probe: &str) -> Option<Detection> {
        let caps = self.regex.captures(response)?;
        let render = |t: &Option<Template>| t.as_ref().and_then(|t| t.render(&caps));
        let cpe = render(&self.cpe).map(|c| c.trim_end_matches(':').to_owned());
        Some(Detection {
            service: Some(self.service.clone()),
            product: render(&self.product),
            version: render(&self.version),
            info: render(&self.info),
            cpe,
            probe: Some(probe.to_owned()),
            soft: self.soft,
            evidence: Evidence::default(),
            ..Detection::default()
        })
    }
}

/// One probe: what to send, where, how long to wait, what to look for.
#[derive(Debug, Clone)]
pub struct Probe {
    pub(super) name: String,
    pub(super) payload: Vec<u8>,
    pub(super) ports: Vec<u16>,
    pub(super) tls: bool,
    pub(super) wait: Duration,
    pub(super) refines: Vec<String>,
    pub(super) matches: Vec<Match>,
}

impl Probe {
    /// The probe's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bytes sent (empty for the null probe). `{host}` is replaced at send time.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Ports where this probe is tried early.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Whether the probe is meant to run inside TLS (recorded, not yet used by [`detect`]).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// How long to wait for the response.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The services whose provisional matches this follow-up probe refines
    /// (empty for ordinary probes, which [`ProbeDb::order_for`] lists).
    pub fn refines(&self) -> &[String] {
        &self.refines
    }

    /// Whether this is a follow-up probe (sent only after a provisional match).
    pub fn is_follow_up(&self) -> bool {
        !self.refines.is_empty()
    }

    /// The match rules, in order.
    pub fn matches(&self) -> &[Match] {
        &self.matches
    }

    /// Whether this is a null probe (connect and listen, send nothing).
    pub fn is_null(&self) -> bool {
        self.payload.is_empty()
    }

    /// The first hard match on `response`, else the first soft match, else `None`.
    /// The returned [`Detection`] has an empty `evidence`.
    pub fn try_match(&self, response: &[u8]) -> Option<Detection> {
        self.hard_match(response)
            .or_else(|| self.soft_match(response))
    }

    pub(super) fn hard_match(&self, response: &[u8]) -> Option<Detection> {
        self.hard_match_rule(response).map(|(d, _)| d)
    }

    /// The first hard match and whether it is provisional.
    pub(super) fn hard_match_rule(&self, response: &[u8]) -> Option<(Detection, bool)> {
        self.matches
            .iter()
            .filter(|m| !m.soft)
            .find_map(|m| m.apply(response, &self.name).map(|d| (d, m.follow_up)))
    }

    pub(super) fn soft_match(&self, response: &[u8]) -> Option<Detection> {
        self.matches
            .iter()
            .filter(|m| m.soft)
            .find_map(|m| m.apply(response, &self.name))
    }

    pub(super) fn payload_for(&self, addr: SocketAddr) -> Vec<u8> {
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let mut out = Vec::with_capacity(self.payload.len() + host.len());
        let mut rest = self.payload.as_slice();
        while !rest.is_empty() {
            if rest.starts_with(HOST_PLACEHOLDER) {
                out.extend_from_slice(host.as_bytes());
                rest = rest.get(HOST_PLACEHOLDER.len()..).unwrap_or_default();
            } else {
                out.extend_from_slice(rest.get(..1).unwrap_or_default());
                rest = rest.get(1..).unwrap_or_default();
            }
        }
        out
    }
}

/// The probe database: probes in order.
#[derive(Debug, Clone, Default)]
pub struct ProbeDb {
    pub(super) probes: Vec<Probe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDb {
    #[serde(default, rename = "probe")]
    pub(super) probes: Vec<RawProbe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) name: toml::Spanned<String>,
    pub(super) protocol: Option<toml::Spanned<String>>,
    pub(super) payload: toml::Spanned<String>,
    #[serde(default)]
    pub(super) ports: Vec<u16>,
    #[serde(default)]
    pub(super) tls: bool,
    pub(super) wait_ms: toml::Spanned<u64>,
    #[serde(default)]
    pub(super) refines: Vec<String>,
    #[serde(default, rename = "match")]
    pub(super) matches: Vec<RawMatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    pub(super) pattern: toml::Spanned<String>,
    pub(super) service: toml::Spanned<String>,
    #[serde(default)]
    pub(super) soft: bool,
    pub(super) follow_up: Option<toml::Spanned<bool>>,
    pub(super) product: Option<toml::Spanned<String>>,
    pub(super) version: Option<toml::Spanned<String>>,
    pub(super) info: Option<toml::Spanned<String>>,
    pub(super) cpe: Option<toml::Spanned<String>>,
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Where a TOML syntax or shape error is, and its message with the line's text.
pub(crate) fn toml_error(src: &str, e: &toml::de::Error) -> (Option<Range<usize>>, String) {
    let span = e.span();
    let mut message = e.message().trim().to_owned();
    if let Some(s) = &span {
        let (line, _) = line_col(src, s.start);
        if let Some(text) = src.lines().nth(line - 1) {
            message.push_str(&format!(" (in `{}`)", text.trim()));
        }
    }
    (span, message)
}

/// The probe (by name, else `#index`) whose `[[probe]]` table holds `offset`.
pub(super) fn probe_at(src: &str, offset: usize) -> Option<String> {
    let before = src.get(..offset.min(src.len()))?;
    let index = before.lines().filter(|l| l.trim() == "[[probe]]").count();
    if index == 0 {
        return None;
    }
    let name = toml::from_str::<toml::Table>(src).ok().and_then(|t| {
        t.get("probe")?
            .as_array()?
            .get(index - 1)?
            .get("name")?
            .as_str()
            .map(str::to_owned)
    });
    Some(name.unwrap_or_else(|| format!("#{index}")))
}

impl ProbeDb {
    /// The built-in database (`data/probes.toml`, compiled in).
    pub fn builtin() -> Result<Self, LoadError> {
        Self::parse(BUILTIN, BUILTIN_ORIGIN)
    }

    /// The built-in database followed by the probes of `path`. A probe of `path` whose
    /// name is already present replaces it (in place); others are appended.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let mut db = Self::builtin()?;
        db.merge(Self::parse_file(path)?);
        Ok(db)
    }

    /// Only the probes of `path` (no built-in ones).
    pub fn parse_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| LoadError {
            origin: origin.clone(),
            line: None,
            column: None,
            probe: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&src, &origin)
    }

    /// Parse a database from TOML text; `origin` names it in errors.
    pub fn parse(src: &str, origin: &str) -> Result<Self, LoadError> {
        let err_at = |span: Option<Range<usize>>, probe: Option<String>, message: String| {
            let (line, column) = span.map(|s| line_col(src, s.start)).unzip();
            LoadError {
                origin: origin.to_owned(),
                line,
                column,
                probe,
                message,
            }
        };
        let raw: RawDb = toml::from_str(src).map_err(|e| {
            let (span, message) = toml_error(src, &e);
            let probe = span.as_ref().and_then(|s| probe_at(src, s.start));
            err_at(span, probe, message)
        })?;
        let mut probes: Vec<Probe> = Vec::with_capacity(raw.probes.len());
        for rp in raw.probes {
            let name = rp.name.get_ref().trim().to_owned();
            if name.is_empty() {
                return Err(err_at(
                    Some(rp.name.span()),
                    None,
                    "empty probe name".into(),
                ));
            }
            let at = |span: Range<usize>, message: String| {
                err_at(Some(span), Some(name.clone()), message)
            };
            if probes.iter().any(|p| p.name == name) {
                return Err(at(rp.name.span(), "duplicate probe name".into()));
            }
            if let Some(protocol) = rp.protocol.as_ref().filter(|p| p.get_ref() != "tcp") {
                return Err(at(
                    protocol.span(),
                    format!(
                        "protocol = \"{}\": only \"tcp\" is supported",
                        protocol.get_ref()
                    ),
                ));
            }
            let payload = parse_escapes(rp.payload.get_ref())
                .map_err(|e| at(rp.payload.span(), format!("payload: {e}")))?;
            if payload.len() > MAX_PAYLOAD {
                return Err(at(
                    rp.payload.span(),
                    format!("payload longer than {MAX_PAYLOAD} bytes"),
                ));
            }
            let wait_ms = *rp.wait_ms.get_ref();
            if wait_ms == 0 || wait_ms > MAX_WAIT_MS {
                return Err(at(
                    rp.wait_ms.span(),
                    format!("wait_ms = {wait_ms}: must be within 1..={MAX_WAIT_MS}"),
                ));
            }
            let mut matches = Vec::with_capacity(rp.matches.len());
            for (i, rm) in rp.matches.into_iter().enumerate() {
                let which = i + 1;
                let regex = RegexBuilder::new(rm.pattern.get_ref())
                    .unicode(false)
                    .dot_matches_new_line(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        at(
                            rm.pattern.span(),
                            format!("match #{which}: bad regex in pattern: {e}"),
                        )
                    })?;
                let groups = regex.captures_len().saturating_sub(1);
                let template = |t: Option<toml::Spanned<String>>, key: &str| {
                    t.map(|t| {
                        Template::parse(t.get_ref(), groups)
                            .map_err(|e| at(t.span(), format!("match #{which}: {key}: {e}")))
                    })
                    .transpose()
                };
                let service = rm.service.get_ref().trim().to_owned();
                if service.is_empty() {
                    return Err(at(
                        rm.service.span(),
                        format!("match #{which}: empty service"),
                    ));
                }
                let follow_up = rm.follow_up.as_ref().is_some_and(|f| *f.get_ref());
                if let Some(flag) = rm.follow_up.as_ref().filter(|_| rm.soft && follow_up) {
                    return Err(at(
                        flag.span(),
                        format!("match #{which}: a soft match cannot also be `follow_up`"),
                    ));
                }
                if rm.soft {
                    let extra = [
                        ("product", &rm.product),
                        ("version", &rm.version),
                        ("info", &rm.info),
                        ("cpe", &rm.cpe),
                    ]
                    .into_iter()
                    .find_map(|(k, v)| v.as_ref().map(|v| (k, v.span())));
                    if let Some((key, span)) = extra {
                        return Err(at(
                            span,
                            format!(
                                "match #{which}: a soft match gives only a service, not `{key}`"
                            ),
                        ));
                    }
                }
                matches.push(Match {
                    regex,
                    service,
                    soft: rm.soft,
                    product: template(rm.product, "product")?,
                    version: template(rm.version, "version")?,
                    info: template(rm.info, "info")?,
                    cpe: template(rm.cpe, "cpe")?,
                    follow_up,
                });
            }
            probes.push(Probe {
                name,
                payload,
                ports: rp.ports,
                tls: rp.tls,
                wait: Duration::from_millis(wait_ms),
                refines: rp
                    .refines
                    .iter()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                matches,
            });
        }
        Ok(Self { probes })
    }

    /// Add `other`'s probes: same name replaces in place, new names are appended.
    pub fn merge(&mut self, other: ProbeDb) {
        for probe in other.probes {
            match self.probes.iter_mut().find(|p| p.name == probe.name) {
                Some(slot) => *slot = probe,
                None => self.probes.push(probe),
            }
        }
    }

    /// All probes, in database order.
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// A probe by name.
    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }

    /// The order probes are sent to `port`: null probes, then those listing the port, then
    /// the rest (database order within each group). Follow-up probes are not listed: they
    /// are sent only after a provisional match (see [`ProbeDb::follow_ups`]).
    pub fn order_for(&self, port: u16) -> Vec<&Probe> {
        let ordinary = || self.probes.iter().filter(|p| !p.is_follow_up());
        let null = ordinary().filter(|p| p.is_null());
        let listed = ordinary().filter(|p| !p.is_null() && p.ports.contains(&port));
        let rest = ordinary().filter(|p| !p.is_null() && !p.ports.contains(&port));
        null.chain(listed).chain(rest).collect()
    }

    /// The follow-up probes that refine a provisional match of `service`, in database
    /// order.
    pub fn follow_ups(&self, service: &str) -> Vec<&Probe> {
        self.probes
            .iter()
            .filter(|p| p.refines.iter().any(|s| s == service))
            .collect()
    }
}
