//! A [`Channel`] built from its [`ChannelConfig`], and what a delivery returns.

use crate::config::ChannelConfig;
use crate::email::EmailChannel;
use crate::error::{ConfigError, DeliveryError};
use crate::message::Alert;
use crate::slack::SlackChannel;
use crate::syslog::SyslogChannel;
use crate::webhook::WebhookChannel;

/// A delivery that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// The channel ([`Channel::label`]).
    pub channel: String,
    /// How many messages were sent: 1 for a webhook, Slack or email; one per item for
    /// syslog (0 for an alert without items).
    pub messages: usize,
}

enum Kind {
    Webhook(WebhookChannel),
    Slack(SlackChannel),
    Syslog(SyslogChannel),
    Email(EmailChannel),
}

/// A channel, ready to deliver alerts. Built once and kept: the Slack channel's rate
/// limit and the HTTP channels' connection pools live in it.
pub struct Channel {
    kind: Kind,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Channel").field(&self.label()).finish()
    }
}

impl Channel {
    /// The channel `config` describes. Reads the CA files it names, loads the system's
    /// trust roots where it needs them, and checks every setting; opens no connection.
    pub fn new(config: &ChannelConfig) -> Result<Channel, ConfigError> {
        let kind = match config {
            ChannelConfig::Webhook(c) => Kind::Webhook(WebhookChannel::new(c)?),
            ChannelConfig::Slack(c) => Kind::Slack(SlackChannel::new(c)?),
            ChannelConfig::Syslog(c) => Kind::Syslog(SyslogChannel::new(c)?),
            ChannelConfig::Email(c) => Kind::Email(EmailChannel::new(c)?),
        };
        Ok(Channel { kind })
    }

    /// The channel's kind and where it delivers, without secrets: `webhook
    /// hooks.example`, `slack hooks.slack.com`, `syslog tls siem.example:6514`, `email
    /// smtp.example:587`.
    pub fn label(&self) -> &str {
        match &self.kind {
            Kind::Webhook(c) => &c.label,
            Kind::Slack(c) => &c.label,
            Kind::Syslog(c) => &c.label,
            Kind::Email(c) => &c.label,
        }
    }

    /// Delivers `alert` once. Every connect, handshake, request and write waits at most
    /// the channel's timeout. On failure the error says whether to try again and, when
    /// the receiver said so, after how long; retrying is the caller's decision.
    pub async fn deliver(&self, alert: &Alert) -> Result<Delivery, DeliveryError> {
        match &self.kind {
            Kind::Webhook(c) => c.deliver(alert).await,
            Kind::Slack(c) => c.deliver(alert).await,
            Kind::Syslog(c) => c.deliver(alert).await,
            Kind::Email(c) => c.deliver(alert).await,
        }
    }
}
