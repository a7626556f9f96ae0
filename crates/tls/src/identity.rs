//! A party's identity in a certificate: the URI SAN `spiffe://fedflow/party/<id>`.

use crate::Error;

/// The URI prefix that names a party.
pub const PARTY_URI_PREFIX: &str = "spiffe://fedflow/party/";

/// The SAN URI naming `party`.
pub fn party_uri(party: &str) -> String {
    format!("{PARTY_URI_PREFIX}{party}")
}

/// The party a DER certificate names. Exactly one party URI must be present, naming a valid
/// party id.
pub fn party_of(cert_der: &[u8]) -> Result<String, Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::Invalid(format!("unreadable certificate: {e}")))?;
    let mut parties = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name
                && let Some(party) = uri.strip_prefix(PARTY_URI_PREFIX)
            {
                parties.push(party.to_owned());
            }
        }
    }
    match parties.as_slice() {
        [party] => match fedflow_core::ids::party_id(party) {
            Ok(()) => Ok(party.clone()),
            Err(e) => Err(Error::Invalid(format!("certificate: {e}"))),
        },
        [] => Err(Error::Invalid(format!(
            "certificate names no party (no SAN URI {PARTY_URI_PREFIX}<id>)"
        ))),
        many => Err(Error::Invalid(format!(
            "certificate names {} parties ({}): exactly one is allowed",
            many.len(),
            many.join(", ")
        ))),
    }
}
