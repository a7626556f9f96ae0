//! The client side of the data plane, for fedflow's own components: FATE's OSX transfer
//! protocol (`org.ppc.ptp.PrivateTransferTransport`) exactly as pyfate's `osx` federation
//! speaks it to its party's broker, which in fedflow is the party-gateway's data-plane port.
//!
//! - The session is the task's federation session (`fedflow_core::session::id`), shared by
//!   every party of the task; it goes in `x-ptp-session-id`.
//! - A message from `src` to `dst` named `name` travels on topic
//!   `{session}-{src_role}-{src_party}-{dst_role}-{dst_party}-{name}` ([`topic`]); the sender's
//!   topic is the receiver's, so each pair of parties has one FIFO per name.
//! - The payload is an OSX `Message` whose `head` is pyfate's JSON head (`content_type`,
//!   `app_id` = the receiver, `message_id` = the name, `correlation_id` = the tag) and whose
//!   `body` is the component's bytes, so a pyfate receiver could read the head too.
//! - `pop` blocks at the broker up to its timeout and answers `E0000000601` when it passed.
//!
//! One channel serves every call of a [`Federation`] (pyfate opens one per call; the gateway
//! serves both).

use std::time::Duration;

use bytes::Bytes;
use fedflow_proto::osx;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// The result code of a call that worked.
pub const OK: &str = "E0000000000";
/// The result code of a pop that found nothing within its timeout.
pub const TIMEOUT: &str = "E0000000601";
/// The tech-provider code pyfate sends.
pub const TECH_PROVIDER: &str = "FATE";

/// A party of the task: its role and party id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub role: String,
    pub party_id: String,
}

impl Party {
    pub fn new(role: impl Into<String>, party_id: impl Into<String>) -> Party {
        Party {
            role: role.into(),
            party_id: party_id.into(),
        }
    }
}

/// Why a data-plane call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("data plane address {address}: {message}")]
    Address { address: String, message: String },
    #[error("no message on {topic} within {waited:?}")]
    Timeout { topic: String, waited: Duration },
    #[error("the gateway refused {what} on {topic}: {code} {message}")]
    Refused {
        what: &'static str,
        topic: String,
        code: String,
        message: String,
    },
    #[error("the gateway could not be reached for {what} on {topic}: {status}")]
    Transport {
        what: &'static str,
        topic: String,
        status: tonic::Status,
    },
    #[error("a message on {topic} is not an OSX message: {message}")]
    Malformed { topic: String, message: String },
}

/// The topic of messages named `name` from `src` to `dst` in `session` (pyfate's naming).
pub fn topic(session: &str, src: &Party, dst: &Party, name: &str) -> String {
    format!(
        "{session}-{}-{}-{}-{}-{name}",
        src.role, src.party_id, dst.role, dst.party_id
    )
}

/// The JSON head pyfate puts on an object message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub content_type: String,
    pub app_id: String,
    pub message_id: String,
    pub correlation_id: String,
}

/// A message popped from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub head: Head,
    pub body: Bytes,
}

/// One party's end of a task's federation session.
#[derive(Debug, Clone)]
pub struct Federation {
    channel: Channel,
    session: String,
    me: Party,
}

impl Federation {
    /// Talks to the data-plane port at `address` (`host:port`) as `me` in `session`. Connects
    /// lazily: the first call reaches the gateway.
    pub fn new(address: &str, session: &str, me: Party) -> Result<Federation, Error> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Error::Address {
                address: address.to_owned(),
                message: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .max_frame_size(fedflow_core::wire::HTTP2_MAX_FRAME);
        Ok(Federation {
            channel: endpoint.connect_lazy(),
            session: session.to_owned(),
            me,
        })
    }

    /// Talks over `channel` (one the caller made, TLS or not) as `me` in `session`.
    pub fn with_channel(channel: Channel, session: &str, me: Party) -> Federation {
        Federation {
            channel,
            session: session.to_owned(),
            me,
        }
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    pub fn me(&self) -> &Party {
        &self.me
    }

    fn client(
        &self,
    ) -> osx::private_transfer_transport_client::PrivateTransferTransportClient<Channel> {
        osx::private_transfer_transport_client::PrivateTransferTransportClient::new(
            self.channel.clone(),
        )
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
    }

    /// The headers pyfate sends with every call, `target` for a push only.
    fn request<T>(&self, body: T, target: Option<&str>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        let headers = request.metadata_mut();
        let mut put = |name: &'static str, value: &str| {
            if let Ok(value) = MetadataValue::try_from(value) {
                headers.insert(name, value);
            }
        };
        put("x-ptp-session-id", &self.session);
        put("x-ptp-from-node-id", &self.me.party_id);
        put("x-ptp-tech-provider-code", TECH_PROVIDER);
        put("x-ptp-trace-id", &uuid::Uuid::new_v4().simple().to_string());
        if let Some(target) = target {
            put("x-ptp-target-node-id", target);
        }
        request
    }

    /// Sends `body` to `to` as message `name` with tag `tag`; returns once the gateway
    /// acknowledged it (durable at the receiving party).
    pub async fn push(&self, to: &Party, name: &str, tag: &str, body: &[u8]) -> Result<(), Error> {
        let topic = topic(&self.session, &self.me, to, name);
        let head = Head {
            content_type: "text/plain".into(),
            app_id: to.party_id.clone(),
            message_id: name.to_owned(),
            correlation_id: tag.to_owned(),
        };
        let message = osx::Message {
            msg_id: uuid::Uuid::new_v4().simple().to_string(),
            head: serde_json::to_vec(&head)
                .expect("a head always serialises")
                .into(),
            body: Bytes::copy_from_slice(body),
        };
        let request = self.request(
            osx::PushInbound {
                topic: topic.clone(),
                payload: message.encode_to_vec().into(),
                metadata: Default::default(),
            },
            Some(&to.party_id),
        );
        let reply = self
            .client()
            .push(request)
            .await
            .map_err(|status| Error::Transport {
                what: "push",
                topic: topic.clone(),
                status,
            })?
            .into_inner();
        if reply.code != OK {
            return Err(Error::Refused {
                what: "push",
                topic,
                code: reply.code,
                message: reply.message,
            });
        }
        Ok(())
    }

    /// The next message named `name` from `from`, waiting at the gateway up to `timeout`.
    pub async fn pop(
        &self,
        from: &Party,
        name: &str,
        timeout: Duration,
    ) -> Result<Received, Error> {
        let topic = topic(&self.session, from, &self.me, name);
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut request = self.request(
            osx::PopInbound {
                topic: topic.clone(),
                timeout: millis,
            },
            None,
        );
        request.set_timeout(timeout.saturating_add(Duration::from_secs(10)));
        let reply = self
            .client()
            .pop(request)
            .await
            .map_err(|status| Error::Transport {
                what: "pop",
                topic: topic.clone(),
                status,
            })?
            .into_inner();
        match reply.code.as_str() {
            OK => {}
            TIMEOUT => {
                return Err(Error::Timeout {
                    topic,
                    waited: timeout,
                });
            }
            _ => {
                return Err(Error::Refused {
                    what: "pop",
                    topic,
                    code: reply.code,
                    message: reply.message,
                });
            }
        }
        let message = osx::Message::decode(reply.payload).map_err(|e| Error::Malformed {
            topic: topic.clone(),
            message: e.to_string(),
        })?;
        let head = serde_json::from_slice(&message.head).map_err(|e| Error::Malformed {
            topic: topic.clone(),
            message: format!("head: {e}"),
        })?;
        Ok(Received {
            head,
            body: message.body,
        })
    }

    /// Drops every queue of the session at this party's gateway (pyfate's `cleanup`).
    pub async fn release(&self) -> Result<(), Error> {
        let reply = self
            .client()
            .release(self.request(osx::ReleaseInbound::default(), None))
            .await
            .map_err(|status| Error::Transport {
                what: "release",
                topic: String::new(),
                status,
            })?
            .into_inner();
        if reply.code != OK {
            return Err(Error::Refused {
                what: "release",
                topic: String::new(),
                code: reply.code,
                message: reply.message,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_sessions_are_named_as_pyfate_names_them() {
        let guest = Party::new("guest", "9999");
        let host = Party::new("host", "10000");
        let session = fedflow_core::session::id("202612011200000000000001", "psi_0", 0);
        assert_eq!(session, "202612011200000000000001_psi_0_0");
        assert_eq!(
            topic(&session, &host, &guest, "value"),
            "202612011200000000000001_psi_0_0-host-10000-guest-9999-value"
        );
        // The sender's topic is the receiver's.
        assert_ne!(
            topic(&session, &host, &guest, "value"),
            topic(&session, &guest, &host, "value")
        );
    }

    #[test]
    fn a_bad_address_is_named() {
        let err = Federation::new("not an address", "s", Party::new("guest", "9999"))
            .expect_err("refused");
        assert!(err.to_string().contains("not an address"), "{err}");
    }
}
