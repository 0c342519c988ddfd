//! What an HTTP service answered to one `GET`: status, redirect, server, title, security
//! headers, cookie flags and CORS, with the raw response head as evidence.

use crate::Evidence;
use serde::{Deserialize, Serialize};

/// The answer of an HTTP service to one `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HttpInfo {
    /// The URL requested (relative redirects resolve against it).
    pub url: String,
    /// Whether the request went over TLS.
    pub tls: bool,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// `Location` as sent.
    pub location: Option<String>,
    /// For a redirect, `Location` resolved to an absolute URL.
    pub redirect_url: Option<String>,
    /// For a redirect, whether it leads to `https`; null when not a redirect.
    pub redirects_to_https: Option<bool>,
    /// `Server` header.
    pub server: Option<String>,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// Page title (entities decoded, whitespace collapsed, capped).
    pub title: Option<String>,
    /// Security headers present, with their values.
    pub security_headers: SecurityHeaders,
    /// Security headers absent (`Strict-Transport-Security` only expected over TLS).
    pub missing_security_headers: Vec<String>,
    /// Flags of each cookie set.
    pub cookies: Vec<CookieFlags>,
    /// CORS answer to a foreign `Origin`; null when no `Access-Control-Allow-*` header.
    pub cors: Option<Cors>,
    /// The response head as evidence: escaped like `evidence`, at most 512 bytes.
    pub head: Evidence,
    /// The head was longer than the bytes kept of it.
    #[serde(default)]
    pub head_truncated: bool,
    /// Body bytes read (on the wire) while looking for the title.
    #[serde(default)]
    pub body_bytes_read: u64,
    /// Oddities met (header cap reached, body cut short, unparsable cookie, ...).
    pub notes: Vec<String>,
}

impl HttpInfo {
    /// Whether the answer is a redirect (a 3xx status).
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
}

/// Values of the security headers the answer carried (`None`: absent). Repeated headers are
/// joined with `, `; each value is capped in length.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SecurityHeaders {
    /// `Strict-Transport-Security`.
    pub hsts: Option<String>,
    /// `Content-Security-Policy`.
    pub csp: Option<String>,
    /// `X-Frame-Options`.
    pub x_frame_options: Option<String>,
    /// `X-Content-Type-Options`.
    pub x_content_type_options: Option<String>,
    /// `Referrer-Policy`.
    pub referrer_policy: Option<String>,
    /// `Permissions-Policy`.
    pub permissions_policy: Option<String>,
}

impl SecurityHeaders {
    /// The header names, in the order of the fields.
    pub const NAMES: [&'static str; 6] = [
        "Strict-Transport-Security",
        "Content-Security-Policy",
        "X-Frame-Options",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "Permissions-Policy",
    ];

    /// The value of the header `name` (any letter case), if it is one of [`Self::NAMES`]
    /// and present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.slot(name).and_then(|v| v.as_deref())
    }

    /// The field for header `name` (any letter case), if it is one of [`Self::NAMES`].
    pub fn slot_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        let i = Self::index(name)?;
        Some(match i {
            0 => &mut self.hsts,
            1 => &mut self.csp,
            2 => &mut self.x_frame_options,
            3 => &mut self.x_content_type_options,
            4 => &mut self.referrer_policy,
            _ => &mut self.permissions_policy,
        })
    }

    fn slot(&self, name: &str) -> Option<&Option<String>> {
        let i = Self::index(name)?;
        Some(match i {
            0 => &self.hsts,
            1 => &self.csp,
            2 => &self.x_frame_options,
            3 => &self.x_content_type_options,
            4 => &self.referrer_policy,
            _ => &self.permissions_policy,
        })
    }

    fn index(name: &str) -> Option<usize> {
        Self::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
    }

    /// Names of the headers absent; `Strict-Transport-Security` is only expected when
    /// `tls` is true.
    pub fn missing(&self, tls: bool) -> Vec<String> {
        Self::NAMES
            .iter()
            .filter(|n| tls || !n.eq_ignore_ascii_case("Strict-Transport-Security"))
            .filter(|n| self.get(n).is_none())
            .map(|n| n.to_string())
            .collect()
    }
}

/// The flags of one cookie set by a `Set-Cookie` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CookieFlags {
    /// Cookie name.
    pub name: String,
    /// The `Secure` attribute is set.
    pub secure: bool,
    /// The `HttpOnly` attribute is set.
    pub http_only: bool,
    /// The `SameSite` attribute: `Strict`, `Lax` or `None`; absent when not set or set to
    /// an unknown value (browsers then apply their default).
    pub same_site: Option<String>,
}

/// CORS headers in the answer to a request carrying an `Origin` nobody would allow on
/// purpose (the detect crate sends `https://portgate.invalid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Cors {
    /// The `Origin` sent with the request.
    pub request_origin: String,
    /// `Access-Control-Allow-Origin`, as sent.
    pub allow_origin: Option<String>,
    /// `Access-Control-Allow-Credentials: true` was sent.
    pub allow_credentials: bool,
    /// `Access-Control-Allow-Origin` is `*`: any site may read the answers (browsers send
    /// no credentials to a wildcard).
    pub wildcard: bool,
    /// `Access-Control-Allow-Origin` echoes the request's origin: the service allows an
    /// origin it cannot know, so it most likely reflects any origin.
    pub reflects_origin: bool,
    /// [`Cors::reflects_origin`] together with [`Cors::allow_credentials`]: any web site can
    /// make a visitor's browser send authenticated requests here and read the answers.
    pub any_origin_with_credentials: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_headers_respect_tls() {
        let mut h = SecurityHeaders::default();
        assert_eq!(h.missing(false).len(), 5);
        assert_eq!(h.missing(true).len(), 6);
        if let Some(slot) = h.slot_mut("content-security-policy") {
            *slot = Some("default-src 'self'".into());
        }
        assert_eq!(h.get("Content-Security-Policy"), Some("default-src 'self'"));
        assert!(
            !h.missing(true)
                .iter()
                .any(|n| n == "Content-Security-Policy")
        );
        assert_eq!(h.slot_mut("X-Unknown"), None);
    }
}
