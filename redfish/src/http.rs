//! One HTTPS connection to a Redfish service: rustls, the certificate verified
//! against the system's store (or the site's CA file) unless `ssl_insecure` says
//! otherwise, Basic authentication, the OData headers every request needs, and every
//! request bounded by the caller's deadline with its status code checked.
//!
//! The connection is kept alive and reused by the command and the status polls that
//! follow it. No request is ever sent twice by this module: a reset that got no
//! answer is reported as such, and the fence algorithm reads the state instead.

use std::net::SocketAddr;
use std::path::Path;

use fencekit_core::{Instant, Secret};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

/// The most a response body may hold: a `ComputerSystem` is a few KiB.
const BODY_LIMIT: usize = 4 << 20;

/// How the service's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Against the system's CA store, or only the CAs of a PEM file.
    Verify { ca_file: Option<std::path::PathBuf> },
    /// Not at all (`ssl_insecure`).
    Insecure,
}

/// What went wrong with a request. Messages name the method and path, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Config(String),
    #[error("TLS with {endpoint}: {detail}")]
    Tls { endpoint: String, detail: String },
    #[error("{endpoint}: cannot connect: {detail}")]
    Connect { endpoint: String, detail: String },
    #[error("{method} {path}: no complete answer by the deadline")]
    Timeout { method: &'static str, path: String },
    #[error("{method} {path}: HTTP {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        method: &'static str,
        path: String,
        code: u16,
        message: Option<String>,
    },
    #[error("{method} {path}: {detail}")]
    Body {
        method: &'static str,
        path: String,
        detail: String,
    },
}

/// The service's addresses, as the client's only resolver: those looked up by the
/// caller, narrowed to the one that answered first, so that every later connection
/// (after a keep-alive drop) goes to the service the command went to, never to
/// another address of the name.
#[derive(Debug)]
struct Addresses {
    host: String,
    addrs: std::sync::Mutex<Vec<SocketAddr>>,
}

impl Addresses {
    fn current(&self) -> Vec<SocketAddr> {
        self.addrs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Holds every later connection to `answered`, one of the addresses.
    fn keep(&self, answered: SocketAddr) {
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = addrs.iter().find(|a| a.ip() == answered.ip()).copied() {
            *addrs = vec![found];
        }
    }
}

impl reqwest::dns::Resolve for Addresses {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found: Result<reqwest::dns::Addrs, Box<dyn std::error::Error + Send + Sync>> =
            if name.as_str().eq_ignore_ascii_case(&self.host) {
                Ok(Box::new(self.current().into_iter()))
            } else {
                Err(format!("{} is not the service's name", name.as_str()).into())
            };
        Box::pin(std::future::ready(found))
    }
}

/// A Redfish service at one address.
pub struct Http {
    client: reqwest::Client,
    addresses: std::sync::Arc<Addresses>,
    /// The password and the Basic credential, to keep a service's error text that
    /// repeats either out of messages.
    secrets: Vec<zeroize::Zeroizing<String>>,
    /// `https://host:port`, host as the certificate must name it.
    origin: String,
    endpoint: String,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Http {
    /// A client for `host` (a name or an address) on `port`, which connects only to
    /// `addrs` (already looked up by the caller's deadline: the client does no name
    /// lookups of its own, which could not be bounded).
    pub fn new(
        host: &str,
        port: u16,
        addrs: &[SocketAddr],
        tls: &Tls,
        username: &str,
        password: &Secret,
    ) -> Result<Http, HttpError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let url_host = if bare.contains(':') {
            format!("[{bare}]")
        } else {
            bare.to_string()
        };
        let origin = format!("https://{url_host}:{port}");
        let endpoint = format!("{url_host}:{port}");
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        // Some BMCs answer 406 to a request without it (DSP0266 §8.3).
        headers.insert("OData-Version", HeaderValue::from_static("4.0"));
        headers.insert(AUTHORIZATION, basic(username, password)?);
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .default_headers(headers)
            // A redirect could carry the credentials elsewhere; a BMC has no reason to.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .http1_only()
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true);
        let addresses = std::sync::Arc::new(Addresses {
            host: bare.to_string(),
            addrs: std::sync::Mutex::new(addrs.to_vec()),
        });
        if bare.parse::<std::net::IpAddr>().is_err() {
            builder = builder.dns_resolver(addresses.clone());
        }
        builder = match tls {
            Tls::Insecure => builder.danger_accept_invalid_certs(true),
            Tls::Verify { ca_file: None } => builder.tls_built_in_native_certs(true),
            Tls::Verify {
                ca_file: Some(path),
            } => {
                let mut builder = builder.tls_built_in_root_certs(false);
                for cert in ca_certificates(path)? {
                    builder = builder.add_root_certificate(cert);
                }
                builder
            }
        };
        let client = builder
            .build()
            .map_err(|e| HttpError::Config(format!("cannot set up HTTPS: {}", chain(&e))))?;
        let mut secrets = vec![zeroize::Zeroizing::new(password.expose().to_string())];
        secrets.push(zeroize::Zeroizing::new(basic_text(username, password)));
        // The encoded credential is a secret of this run too, for every log line.
        fencekit_core::screen::watch(&Secret::new(secrets[1].as_str()));
        Ok(Http {
            secrets,
            client,
            addresses,
            origin,
            endpoint,
        })
    }

    /// `https://host:port`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// GETs a resource as JSON.
    pub async fn get(&self, path: &str, deadline: Instant) -> Result<Value, HttpError> {
        let url = self.url("GET", path)?;
        let body = self
            .send("GET", path, self.client.get(url), deadline)
            .await?;
        let parsed =
            serde_json::from_slice::<strict::Strict>(&body).map_err(|e| HttpError::Body {
                method: "GET",
                path: path.to_string(),
                detail: format!("the answer is not JSON with one value per name ({e})"),
            })?;
        Ok(parsed.0)
    }

    /// POSTs an action; success is any 2xx (200, 202 Accepted, 204 No Content).
    pub async fn post(&self, path: &str, body: &Value, deadline: Instant) -> Result<(), HttpError> {
        let url = self.url("POST", path)?;
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send("POST", path, request, deadline).await.map(|_| ())
    }

    /// A path from the user or from the service, as a URL on this service only: an
    /// `@odata.id` naming another host is refused rather than sent the credentials.
    fn url(&self, method: &'static str, path: &str) -> Result<String, HttpError> {
        let path = path.trim();
        let local = if let Some(rest) = path.strip_prefix(&self.origin) {
            rest
        } else if path.starts_with('/') {
            path
        } else {
            return Err(HttpError::Body {
                method,
                path: shown(path),
                detail: "not a path on this service".into(),
            });
        };
        if !local.starts_with('/') || local.chars().any(|c| c.is_control() || c == ' ') {
            return Err(HttpError::Body {
                method,
                path: shown(path),
                detail: "not a path on this service".into(),
            });
        }
        Ok(format!("{}{local}", self.origin))
    }

    async fn send(
        &self,
        method: &'static str,
        path: &str,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<Vec<u8>, HttpError> {
        let timeout = || HttpError::Timeout {
            method,
            path: path.to_string(),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout());
        }
        let exchange = async {
            let mut response = request
                .timeout(left)
                .send()
                .await
                .map_err(|e| self.transport(method, path, &e))?;
            if let Some(answered) = response.remote_addr() {
                self.addresses.keep(answered);
            }
            let code = response.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| self.transport(method, path, &e))?
            {
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(HttpError::Body {
                        method,
                        path: path.to_string(),
                        detail: format!("the answer is larger than {} MiB", BODY_LIMIT >> 20),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            if !(200..300).contains(&code) {
                return Err(HttpError::Status {
                    method,
                    path: path.to_string(),
                    code,
                    message: redfish_message(&body).map(|m| self.withhold_secrets(m)),
                });
            }
            Ok(body)
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(timeout()),
        }
    }

    /// A service's text, withheld whole if it repeats the password or the Basic
    /// credential (masked in place, it would show where the secret stood).
    fn withhold_secrets(&self, text: String) -> String {
        if self
            .secrets
            .iter()
            .any(|s| fencekit_core::screen::shows(&text, s))
        {
            "[withheld: the service's text holds a secret]".into()
        } else {
            text
        }
    }

    fn transport(&self, method: &'static str, path: &str, error: &reqwest::Error) -> HttpError {
        let detail = chain(error);
        if error.is_timeout() {
            HttpError::Timeout {
                method,
                path: path.to_string(),
            }
        } else if let Some(cause) = tls_cause(error) {
            HttpError::Tls {
                endpoint: self.endpoint.clone(),
                detail: cause,
            }
        } else if error.is_connect() {
            HttpError::Connect {
                endpoint: self.endpoint.clone(),
                detail,
            }
        } else {
            HttpError::Body {
                method,
                path: path.to_string(),
                detail,
            }
        }
    }
}

/// The base64 of `username:password`, as the Basic credential carries it.
fn basic_text(username: &str, password: &Secret) -> String {
    use base64::Engine as _;
    let plain = zeroize::Zeroizing::new(format!("{username}:{}", password.expose()));
    base64::engine::general_purpose::STANDARD.encode(plain.as_bytes())
}

/// The `Authorization: Basic` value, marked sensitive (never printed by the client).
fn basic(username: &str, password: &Secret) -> Result<HeaderValue, HttpError> {
    use zeroize::Zeroizing;
    let encoded = Zeroizing::new(format!(
        "Basic {}",
        Zeroizing::new(basic_text(username, password)).as_str()
    ));
    // Base64 text is always a valid header value; the error cannot happen.
    let mut value = HeaderValue::from_str(&encoded)
        .map_err(|_| HttpError::Config("cannot encode the credentials".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The largest `ssl_ca_file` read: a bundle of every public CA is under 300 KiB.
const CA_FILE_LIMIT: usize = 4 << 20;

/// The CA certificates of a PEM file.
fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let pem = fencekit_core::files::read_bounded(path, CA_FILE_LIMIT)
        .map_err(|e| HttpError::Config(format!("ssl_ca_file {}: {e}", path.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        HttpError::Config(format!(
            "ssl_ca_file {}: not PEM certificates: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(HttpError::Config(format!(
            "ssl_ca_file {}: holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// What rustls said was wrong, when the error came from the TLS handshake: the
/// innermost cause names the certificate problem (`invalid peer certificate:
/// UnknownIssuer`, `NotValidForName`, `Expired`).
fn tls_cause(error: &reqwest::Error) -> Option<String> {
    let mut innermost = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    let lower = chain(error).to_ascii_lowercase();
    (lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls"))
        .then_some(innermost)
}

/// An error and its causes on one line (rustls says what was wrong with the
/// certificate only in a cause).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    // reqwest names the URL; keep the message about the cause.
    text.replace("error sending request for url ", "request to ")
}

/// The message of a Redfish error body (`error.message`, or its first extended
/// message), cut to one printable line.
fn redfish_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    let text = error
        .get("@Message.ExtendedInfo")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .and_then(|info| info.get("Message"))
        .and_then(Value::as_str)
        .or_else(|| error.get("message").and_then(Value::as_str))?;
    Some(shown(text))
}

/// Device text as one short printable line.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redfish_error_messages_are_read_and_cut_to_one_line() {
        let body = br#"{"error":{"code":"Base.1.0.GeneralError","message":"A general error",
            "@Message.ExtendedInfo":[{"Message":"The action\nNmi is not supported"}]}}"#;
        assert_eq!(
            redfish_message(body).as_deref(),
            Some("The action Nmi is not supported")
        );
        assert_eq!(
            redfish_message(br#"{"error":{"message":"busy"}}"#).as_deref(),
            Some("busy")
        );
        assert_eq!(redfish_message(b"<html>"), None);
        assert!(shown(&"x".repeat(1000)).chars().count() <= 201);
    }

    /// The client's resolver gives the addresses looked up, then only the one that
    /// answered; a name other than the service's is refused.
    #[tokio::test]
    async fn connections_after_the_first_answer_go_to_its_address_only() {
        use reqwest::dns::Resolve;
        let a: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:443".parse().unwrap();
        let addresses = Addresses {
            host: "bmc1.example".into(),
            addrs: std::sync::Mutex::new(vec![a, b]),
        };
        let resolve = |name: &str| {
            let name: reqwest::dns::Name = name.parse().unwrap();
            addresses.resolve(name)
        };
        let all: Vec<SocketAddr> = resolve("bmc1.example").await.unwrap().collect();
        assert_eq!(all, vec![a, b]);
        // Not one of them: nothing changes.
        addresses.keep("192.0.2.9:443".parse().unwrap());
        assert_eq!(addresses.current(), vec![a, b]);
        // The answer came from b (on whatever port the URL gave).
        addresses.keep("192.0.2.2:8443".parse().unwrap());
        let kept: Vec<SocketAddr> = resolve("BMC1.example").await.unwrap().collect();
        assert_eq!(kept, vec![b]);
        assert!(resolve("elsewhere.example").await.is_err());
    }

    #[test]
    fn paths_elsewhere_are_refused_before_anything_is_sent() {
        let http = Http::new(
            "127.0.0.1",
            8443,
            &[],
            &Tls::Insecure,
            "admin",
            &Secret::new("pw"),
        )
        .unwrap();
        assert_eq!(
            http.url("GET", "/redfish/v1").unwrap(),
            "https://127.0.0.1:8443/redfish/v1"
        );
        assert_eq!(
            http.url("GET", "https://127.0.0.1:8443/redfish/v1/Systems")
                .unwrap(),
            "https://127.0.0.1:8443/redfish/v1/Systems"
        );
        for path in [
            "https://evil.example/redfish/v1",
            "redfish/v1",
            "/a b",
            "/a\r\nX: y",
        ] {
            assert!(http.url("GET", path).is_err(), "{path}");
        }
        let v6 = Http::new("::1", 443, &[], &Tls::Insecure, "a", &Secret::new("b")).unwrap();
        assert_eq!(v6.origin(), "https://[::1]:443");
    }

    #[test]
    fn a_service_text_repeating_the_password_or_its_credential_is_withheld() {
        let http = Http::new(
            "127.0.0.1",
            443,
            &[],
            &Tls::Insecure,
            "admin",
            &Secret::new("S3cr3tPw!zq"),
        )
        .unwrap();
        for text in [
            "bad password S3cr3tPw!zq",
            "header was Basic YWRtaW46UzNjcjN0UHchenE=",
        ] {
            let shown = http.withhold_secrets(text.to_string());
            assert!(shown.contains("withheld"), "{shown}");
        }
        assert_eq!(http.withhold_secrets("busy".into()), "busy");
    }

    #[test]
    fn the_credentials_header_is_sensitive_and_never_in_debug() {
        let value = basic("admin", &Secret::new("hunter2-unique")).unwrap();
        assert!(value.is_sensitive());
        // "admin:hunter2-unique" in base64 (RFC 4648 §4).
        assert_eq!(
            value.to_str().unwrap(),
            "Basic YWRtaW46aHVudGVyMi11bmlxdWU="
        );
        let http = Http::new(
            "127.0.0.1",
            443,
            &[],
            &Tls::Insecure,
            "admin",
            &Secret::new("hunter2-unique"),
        )
        .unwrap();
        assert!(!format!("{http:?}").contains("hunter2"));
    }
}

/// JSON read as [`Value`], refusing an object that names a member twice: a
/// document saying `"PowerState": "On"` and `"PowerState": "Off"` says nothing
/// certain, and must not count as a read back (serde_json keeps the last).
mod strict {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    pub struct Strict(pub Value);

    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
            deserializer.deserialize_any(StrictVisitor)
        }
    }

    struct StrictVisitor;

    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Strict;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<Strict, E> {
            Ok(Strict(Value::Bool(v)))
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Strict, E> {
            Ok(Strict(Value::String(v.to_string())))
        }
        fn visit_string<E: Error>(self, v: String) -> Result<Strict, E> {
            Ok(Strict(Value::String(v)))
        }
        fn visit_unit<E: Error>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_none<E: Error>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Strict(Value::Array(items)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut members = Map::new();
            while let Some(name) = map.next_key::<String>()? {
                let Strict(value) = map.next_value()?;
                if members.contains_key(&name) {
                    let shown: String = name.chars().take(64).collect();
                    return Err(A::Error::custom(format!("`{shown}` is given twice")));
                }
                members.insert(name, value);
            }
            Ok(Strict(Value::Object(members)))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::Strict;

        #[test]
        fn a_member_named_twice_is_refused_at_any_depth_and_the_rest_read_as_serde_json_does() {
            for twice in [
                r#"{"PowerState":"On","Id":"1","PowerState":"Off"}"#,
                r#"{"Members":[{"@odata.id":"/a","@odata.id":"/b"}]}"#,
            ] {
                let err = serde_json::from_str::<Strict>(twice).err().unwrap();
                assert!(err.to_string().contains("given twice"), "{err}");
            }
            let text = r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":18446744073709551615}"#;
            let Strict(value) = serde_json::from_str(text).unwrap();
            assert_eq!(
                value,
                serde_json::from_str::<serde_json::Value>(text).unwrap()
            );
        }
    }
}
