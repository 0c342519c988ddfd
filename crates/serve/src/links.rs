//! Signed acknowledgement links: each open finding in an alert carries
//! `{public_url}/v1/ack/{fingerprint}?expires=UNIX&sig=HEX`, where `sig` is the hex HMAC-SHA256
//! of `ack\n{fingerprint}\n{expires}` under the server's link secret. The link is the
//! authority (no API key): opening it shows the finding and a form for a name and a comment
//! (a `GET` changes nothing, so a mail scanner that follows links acknowledges nothing);
//! sending the form acknowledges. A link expires (7 days by default) and names one finding.

use crate::State;
use crate::api::store_failed;
use crate::problem::Problem;
use axum::extract::{Form, Path, Query};
use axum::response::Html;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use portgate_alert::render::html_escape;
use portgate_model::lifecycle::FindingState;
use serde::Deserialize;
use sha2::Sha256;
use std::time::Duration;

/// How acknowledgement links are made.
#[derive(Clone)]
pub struct AckLinks {
    /// Where people reach this server (`https://portgate.example.test`), no trailing slash.
    pub base_url: String,
    secret: Vec<u8>,
    /// How long a link works.
    pub valid: Duration,
}

impl std::fmt::Debug for AckLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckLinks")
            .field("base_url", &self.base_url)
            .field("secret", &"…")
            .field("valid", &self.valid)
            .finish()
    }
}

/// The shortest link secret taken.
pub const MIN_SECRET: usize = 32;

impl AckLinks {
    /// Links to `base_url` signed with `secret` (at least [`MIN_SECRET`] bytes), valid for
    /// `valid`.
    pub fn new(base_url: &str, secret: &str, valid: Duration) -> Result<AckLinks, String> {
        let base = base_url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base)
            .map_err(|e| format!("public_url \"{base}\": not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(format!(
                "public_url \"{base}\": give an http:// or https:// URL"
            ));
        }
        if secret.len() < MIN_SECRET {
            return Err(format!(
                "link_secret: {} bytes; give at least {MIN_SECRET} random bytes (e.g. `openssl rand -hex 32`)",
                secret.len()
            ));
        }
        if valid.is_zero() {
            return Err("ack_link_valid: give how long a link works, e.g. 7d".into());
        }
        Ok(AckLinks {
            base_url: base.to_string(),
            secret: secret.as_bytes().to_vec(),
            valid,
        })
    }

    fn sign(&self, fingerprint: &str, expires: i64) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any size");
        mac.update(format!("ack\n{fingerprint}\n{expires}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The link that acknowledges `fingerprint`, made at `now`.
    pub fn url(&self, fingerprint: &str, now: DateTime<Utc>) -> String {
        let valid = i64::try_from(self.valid.as_secs()).unwrap_or(i64::MAX);
        let expires = now.timestamp().saturating_add(valid);
        format!(
            "{}/v1/ack/{fingerprint}?expires={expires}&sig={}",
            self.base_url,
            self.sign(fingerprint, expires)
        )
    }

    /// Whether `sig` signs `fingerprint` until `expires`, and that is after `now`.
    pub fn check(
        &self,
        fingerprint: &str,
        expires: i64,
        sig: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Problem> {
        let given = hex::decode(sig).unwrap_or_default();
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any size");
        mac.update(format!("ack\n{fingerprint}\n{expires}").as_bytes());
        if mac.verify_slice(&given).is_err() {
            return Err(Problem::forbidden("the link's signature does not match"));
        }
        if now.timestamp() >= expires {
            return Err(Problem::forbidden(
                "the link has expired: acknowledge with `portgate ack` or the API",
            ));
        }
        Ok(())
    }
}

/// The signature of a link.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Signed {
    expires: i64,
    sig: String,
}

/// The form of the page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AckForm {
    by: String,
    comment: String,
}

fn links(state: &State) -> Result<&AckLinks, Problem> {
    state
        .0
        .config
        .ack_links
        .as_ref()
        .ok_or_else(|| Problem::not_found("this server makes no acknowledgement links"))
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title></head><body><h1>{t}</h1>{body}</body></html>",
        t = html_escape(title)
    ))
}

/// `GET /v1/ack/{fingerprint}?expires&sig`: the finding and a form; changes nothing.
pub(crate) async fn show(
    axum::extract::State(state): axum::extract::State<State>,
    Path(fingerprint): Path<String>,
    signed: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, Problem> {
    let Query(signed) = signed.map_err(|r| Problem::invalid(r.body_text()))?;
    links(&state)?.check(&fingerprint, signed.expires, &signed.sig, Utc::now())?;
    let found = state
        .0
        .store
        .finding(&fingerprint)
        .await
        .map_err(store_failed("read a finding"))?
        .ok_or_else(|| Problem::not_found(format!("no finding {fingerprint}")))?;
    let f = &found.finding;
    let summary = format!(
        "<p><strong>{}</strong> {} on {} ({})</p><p>{}</p><p>State: {}</p>",
        html_escape(f.severity.as_str()),
        html_escape(f.rule.id()),
        html_escape(&f.endpoint()),
        html_escape(&f.target),
        html_escape(&f.message),
        html_escape(found.state.as_str()),
    );
    let form = if found.state == FindingState::Open {
        format!(
            "<form method=\"post\" action=\"/v1/ack/{fp}?expires={e}&amp;sig={s}\">\
             <p><label>Your name <input name=\"by\" required maxlength=\"200\"></label></p>\
             <p><label>Comment <textarea name=\"comment\" required maxlength=\"2000\"></textarea></label></p>\
             <p><button type=\"submit\">Acknowledge</button></p></form>",
            fp = html_escape(&fingerprint),
            e = signed.expires,
            s = html_escape(&signed.sig),
        )
    } else {
        String::new()
    };
    Ok(page("Acknowledge a finding", &format!("{summary}{form}")))
}

/// `POST /v1/ack/{fingerprint}?expires&sig` with `by` and `comment` (a form): acknowledges.
pub(crate) async fn submit(
    axum::extract::State(state): axum::extract::State<State>,
    Path(fingerprint): Path<String>,
    signed: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
    form: Result<Form<AckForm>, axum::extract::rejection::FormRejection>,
) -> Result<Html<String>, Problem> {
    let Query(signed) = signed.map_err(|r| Problem::invalid(r.body_text()))?;
    links(&state)?.check(&fingerprint, signed.expires, &signed.sig, Utc::now())?;
    let Form(form) = form.map_err(|r| Problem::invalid(r.body_text()))?;
    let (by, comment) = crate::findings::ack_text(&form.by, &form.comment)?;
    let acked = crate::findings::acknowledge(&state, &fingerprint, by, comment).await?;
    Ok(page(
        "Acknowledged",
        &format!(
            "<p>{} is {} by {}.</p>",
            html_escape(&acked.finding.endpoint()),
            html_escape(acked.state.as_str()),
            html_escape(acked.acknowledged_by.as_deref().unwrap_or(by)),
        ),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_link_acknowledges_its_finding_until_it_expires() {
        let links = AckLinks::new(
            "https://portgate.example.test/",
            &"s".repeat(32),
            Duration::from_secs(3600),
        )
        .unwrap();
        let now = Utc::now();
        let url = links.url("abc", now);
        assert!(url.starts_with("https://portgate.example.test/v1/ack/abc?expires="));
        let parsed = reqwest::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        let expires: i64 = q["expires"].parse().unwrap();
        assert!(links.check("abc", expires, &q["sig"], now).is_ok());
        // Another finding, another expiry, a changed signature, too late: refused.
        assert!(links.check("abd", expires, &q["sig"], now).is_err());
        assert!(links.check("abc", expires + 1, &q["sig"], now).is_err());
        assert!(links.check("abc", expires, "00", now).is_err());
        let later = now + chrono::Duration::hours(2);
        assert!(links.check("abc", expires, &q["sig"], later).is_err());
        assert!(
            AckLinks::new(
                "ftp://x.example.test",
                &"s".repeat(32),
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(
            AckLinks::new("https://x.example.test", "short", Duration::from_secs(1))
                .unwrap_err()
                .contains("link_secret")
        );
    }
}
