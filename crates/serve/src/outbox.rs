//! The alert sender: takes the messages due from the outbox in the store (leased, so two
//! servers on one database do not both send one), delivers each to its channel, and records
//! the attempt. A failed attempt is retried with a growing delay (1 s doubling to an hour,
//! or the receiver's `Retry-After`) for at least a day; a message is marked delivered the
//! moment its receiver accepted it, and every attempt has the same message id, so a receiver
//! that saw a repeat (the server died between the two) can tell.

use crate::State;
use chrono::{DateTime, Utc};
use portgate_store::OutboxMessage;
use std::collections::HashMap;
use std::time::Duration;

/// How long a sender holds the messages it took.
const LEASE: Duration = Duration::from_secs(120);
/// How long a message is retried before it is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(25 * 3600);
/// The longest delay between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Sends until the server drains.
pub(crate) async fn run(state: State) {
    if state.0.config.alerts.is_empty() {
        return;
    }
    // Its own name: a sender that stops gives back what it took, and only that.
    let owner = format!(
        "{}-outbox-{:08x}",
        portgate_store::worker_id(),
        rand::random::<u32>()
    );
    let mut channels: HashMap<String, portgate_alert::Channel> = HashMap::new();
    for route in &state.0.config.alerts {
        match portgate_alert::Channel::new(&route.channel) {
            Ok(channel) => {
                channels.insert(route.name.clone(), channel);
            }
            Err(e) => {
                tracing::error!(channel = %route.name, error = %e, "alert channel {}: {e}", route.name)
            }
        }
    }
    while !state.draining() {
        let due = state
            .0
            .store
            .claim_alerts(&owner, Utc::now(), LEASE, 16)
            .await;
        match due {
            Ok(messages) if !messages.is_empty() => {
                for message in messages {
                    if state.draining() {
                        break;
                    }
                    send(&state, &owner, &channels, message).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the outbox: {e}"),
        }
        // Woken by a new message, or a second later for the retries that became due.
        let _ = tokio::time::timeout(Duration::from_secs(1), state.0.outbox_wake.notified()).await;
    }
    // What was taken and not sent goes to the next sender at once.
    if let Err(e) = state.0.store.release_alerts(&owner).await {
        tracing::error!(error = %e, "{e}");
    }
}

async fn send(
    state: &State,
    owner: &str,
    channels: &HashMap<String, portgate_alert::Channel>,
    message: OutboxMessage,
) {
    let now = Utc::now();
    let outcome = match (
        channels.get(&message.channel),
        serde_json::from_str::<portgate_alert::Alert>(&message.alert),
    ) {
        (None, _) => Err((
            format!("no channel named {} is configured", message.channel),
            None,
        )),
        (_, Err(e)) => Err((format!("the stored alert is unreadable: {e}"), None)),
        (Some(channel), Ok(alert)) => match channel.deliver(&alert).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let retry = e
                    .retryable
                    .then(|| retry_at(&message, e.retry_after, now))
                    .flatten();
                Err((e.to_string(), retry))
            }
        },
    };
    let recorded = match &outcome {
        Ok(()) => {
            state
                .0
                .store
                .record_delivery(message.id, owner, Ok("delivered"), now)
                .await
        }
        Err((error, retry)) => {
            if retry.is_none() {
                tracing::warn!(
                    alert = %message.message_id,
                    channel = %message.channel,
                    error = %error,
                    "alert {} to {}: given up: {error}",
                    message.message_id,
                    message.channel
                );
            }
            state
                .0
                .store
                .record_delivery(message.id, owner, Err((error, *retry)), now)
                .await
        }
    };
    if let Err(e) = recorded {
        tracing::error!(alert = %message.message_id, error = %e, "alert {}: {e}", message.message_id);
    }
}

/// When to try `message` again after its failed attempt at `now`: the receiver's
/// `Retry-After`, else 1 s doubling with each attempt up to an hour; none once it has been
/// tried for [`GIVE_UP_AFTER`].
pub(crate) fn retry_at(
    message: &OutboxMessage,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let age = (now - message.created_at).to_std().unwrap_or_default();
    if age >= GIVE_UP_AFTER {
        return None;
    }
    let backoff = Duration::from_secs(1u64 << message.attempts.clamp(0, 12)).min(MAX_DELAY);
    let delay = retry_after.unwrap_or(backoff).min(MAX_DELAY);
    Some(now + chrono::Duration::from_std(delay).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(attempts: i64, age: chrono::Duration, now: DateTime<Utc>) -> OutboxMessage {
        OutboxMessage {
            id: 1,
            channel: "ops".into(),
            message_id: "m".into(),
            alert: "{}".into(),
            attempts,
            created_at: now - age,
            status: "pending".into(),
            last_error: None,
        }
    }

    #[test]
    fn retries_back_off_honour_retry_after_and_stop_after_a_day() {
        let now = Utc::now();
        let after = |attempts, age, retry| {
            retry_at(&message(attempts, age, now), retry, now).map(|t| (t - now).num_seconds())
        };
        let minute = chrono::Duration::minutes(1);
        assert_eq!(after(0, minute, None), Some(1));
        assert_eq!(after(3, minute, None), Some(8));
        assert_eq!(after(40, minute, None), Some(3600));
        assert_eq!(after(3, minute, Some(Duration::from_secs(30))), Some(30));
        // An hour of outage is far inside the day: still retried.
        assert_eq!(after(12, chrono::Duration::hours(1), None), Some(3600));
        assert_eq!(after(12, chrono::Duration::hours(25), None), None);
    }
}
