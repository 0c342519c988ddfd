//! What an HTTP service answered to one `GET`: status, redirect, server, title, security
//! headers, cookie flags and CORS, with the raw response head as evidence.

use serde::{Deserialize, Serialize};

/// The answer of an HTTP service (plain or over TLS) to one `GET` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    /// The URL requested, e.g. `http://127.0.0.1:8080/` (relative redirects resolve
    /// against it).
    pub url: String,
    /// Whether the request went over TLS.
    pub tls: bool,
    /// Protocol version of the response: `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: String,
    /// The `Location` header as sent (capped), when there is one.
    pub location: Option<String>,
    /// `Location` resolved against [`HttpInfo::url`] into an absolute URL, for a redirect
    /// (3xx) whose `Location` is a valid URL reference.
    pub redirect_url: Option<String>,
    /// For a redirect: whether [`HttpInfo::redirect_url`] is an `https` URL. `None` when the
    /// answer is not a redirect or its target could not be resolved. On a plain-HTTP port,
    /// `Some(true)` means the port sends clients on to HTTPS.
    pub redirects_to_https: Option<bool>,
    /// The `Server` header.
    pub server: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The page's `<title>`: entities decoded, whitespace collapsed, capped in length.
    /// Read only from the first bytes of an HTML (or untyped) body.
    pub title: Option<String>,
    /// The security headers present, with their values.
    pub security_headers: SecurityHeaders,
    /// Names of the security headers absent from the answer, from
    /// [`SecurityHeaders::NAMES`]; `Strict-Transport-Security` counts only over TLS
    /// (browsers ignore it on plain HTTP).
    pub missing_security_headers: Vec<String>,
    /// One entry per `Set-Cookie` header that could be parsed, in order.
    pub cookies: Vec<CookieFlags>,
    /// CORS headers sent back to the request's `Origin`; `None` when the answer has no
    /// `Access-Control-Allow-*` header.
    pub cors: Option<Cors>,
    /// Evidence: the raw response head (status line and headers, up to and including the
    /// blank line), capped.
    pub head: Vec<u8>,
    /// The head was longer than the evidence cap and [`HttpInfo::head`] holds only its start.
    pub head_truncated: bool,
    /// Body bytes read (on the wire) while looking for the title.
    pub body_bytes_read: u64,
    /// Anything odd met on the way: headers beyond the cap, unparsable cookies, a body cut
    /// short by the time or byte limit, interim (1xx) answers skipped, ...
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
