//! Drives the whole router with `tower::ServiceExt::oneshot` and no socket: the real
//! state on a real SQLite file in a temp dir, one request at a time, the client address
//! supplied per request.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use conclave_identity::DeviceKey;
use conclave_server::api::{app, now, random_id_bytes, AppState, CSRF_HEADER, SESSION_COOKIE};
use conclave_server::config::Config;
use conclave_types::MeetingId;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// Inside the default configuration's `office` network (127.0.0.1/32).
const OFFICE: [u8; 4] = [127, 0, 0, 1];
/// Outside every trusted network.
const ELSEWHERE: [u8; 4] = [127, 0, 0, 2];
/// The password of every account the tests create.
const PASSWORD: &str = "correct horse battery staple";

// ---- harness ----------------------------------------------------------------

/// An initialised data directory and the router over it.
struct Server {
    app: Router,
    state: AppState,
    admin_password: String,
    _dir: tempfile::TempDir,
}

/// A signed-in user: the session cookie, its CSRF token and who it is.
#[derive(Debug, Clone)]
struct Signed {
    cookie: String,
    csrf: String,
    id: String,
}

/// A request being put together.
struct Call {
    method: Method,
    uri: String,
    headers: Vec<(header::HeaderName, String)>,
    body: Vec<u8>,
    client: [u8; 4],
}

/// A response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.storage.data_dir = dir.path().join("data");
        adjust(&mut config);
        let init = conclave_server::setup::init(&config, "admin")
            .await
            .expect("init the data dir");
        let (_, admin_password) = init.admin.expect("a fresh data dir gets an admin");
        let data = conclave_server::setup::open(&config)
            .await
            .expect("open the data dir");
        let state = AppState::new(config, data.store, data.audit, data.key).expect("state");
        Self {
            app: app(state.clone()),
            state,
            admin_password,
            _dir: dir,
        }
    }

    async fn send(&self, call: Call) -> Reply {
        send_to(self.app.clone(), call.build()).await
    }

    async fn sign_in(&self, name: &str, password: &str) -> Signed {
        let reply = self
            .send(Call::post("/api/session").json(json!({"name": name, "password": password})))
            .await;
        let body = reply.check(StatusCode::OK, "sign in");
        let set_cookie = reply.header(header::SET_COOKIE);
        let cookie = set_cookie
            .split(';')
            .next()
            .expect("a cookie pair")
            .to_string();
        Signed {
            cookie,
            csrf: text(&body["csrf_token"]),
            id: text(&body["user"]["id"]),
        }
    }

    async fn admin(&self) -> Signed {
        self.sign_in("admin", &self.admin_password).await
    }

    async fn create_user(&self, admin: &Signed, name: &str, role: &str) {
        self.send(Call::post("/api/users").by(admin).json(json!({
            "name": name,
            "display_name": name.to_uppercase(),
            "role": role,
            "password": PASSWORD,
        })))
        .await
        .check(StatusCode::CREATED, "create user");
    }

    async fn add_user(&self, admin: &Signed, name: &str, role: &str) -> Signed {
        self.create_user(admin, name, role).await;
        self.sign_in(name, PASSWORD).await
    }

    /// Schedules a meeting that starts now and lasts an hour; returns its id.
    async fn schedule(&self, host: &Signed, classification: &str, invitees: &[&str]) -> String {
        let start = now();
        let end = start.saturating_add(std::time::Duration::from_secs(3600));
        let body = self
            .send(Call::post("/api/meetings").by(host).json(json!({
                "title": format!("{classification} meeting"),
                "classification": classification,
                "starts_at": start.to_rfc3339(),
                "ends_at": end.to_rfc3339(),
                "invitees": invitees,
            })))
            .await
            .check(StatusCode::CREATED, "schedule");
        text(&body["id"])
    }

    /// Registers a fresh device key; returns the key and the registration answer.
    async fn register_device(&self, user: &Signed, token: Option<&str>) -> (DeviceKey, Value) {
        let key = DeviceKey::generate(&mut rand::rngs::OsRng);
        let mut body = json!({"name": "laptop", "public_key": key.public().to_string()});
        if let Some(token) = token {
            body["enrolment_token"] = json!(token);
        }
        let answer = self
            .send(Call::post("/api/devices").by(user).json(body))
            .await
            .check(StatusCode::CREATED, "register device");
        (key, answer)
    }

    async fn challenge(&self, user: &Signed, meeting: &str) -> String {
        let body = self
            .send(Call::post(format!("/api/meetings/{meeting}/challenge")).by(user))
            .await
            .check(StatusCode::OK, "challenge");
        text(&body["challenge"])
    }

    /// Posts a join with `challenge` signed by `key` for `meeting`.
    async fn join_with(
        &self,
        user: &Signed,
        meeting: &str,
        key: &DeviceKey,
        credential: &str,
        challenge: &str,
        client: [u8; 4],
    ) -> Reply {
        let id: MeetingId = meeting.parse().expect("a well-formed meeting id");
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(challenge)
            .expect("base64 challenge")
            .try_into()
            .expect("32-byte challenge");
        let signature = URL_SAFE_NO_PAD.encode(key.sign_join_challenge(&id, &bytes));
        self.send(
            Call::post(format!("/api/meetings/{meeting}/join"))
                .by(user)
                .from(client)
                .json(json!({
                    "credential": credential,
                    "challenge": challenge,
                    "signature": signature,
                })),
        )
        .await
    }

    /// Fetches a fresh challenge and joins with it.
    async fn join(
        &self,
        user: &Signed,
        meeting: &str,
        key: &DeviceKey,
        credential: &str,
        client: [u8; 4],
    ) -> Reply {
        let challenge = self.challenge(user, meeting).await;
        self.join_with(user, meeting, key, credential, &challenge, client)
            .await
    }

    /// The whole audit log as `reader` sees it through the API.
    async fn audit(&self, reader: &Signed) -> Vec<Value> {
        let body = self
            .send(Call::get("/api/audit?limit=1000").by(reader))
            .await
            .check(StatusCode::OK, "read audit");
        body.as_array().expect("an array of entries").clone()
    }
}

async fn send_to(app: Router, request: Request<Body>) -> Reply {
    let response = app
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

impl Call {
    fn new(method: Method, uri: impl Into<String>) -> Self {
        Self {
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Vec::new(),
            client: OFFICE,
        }
    }

    fn get(uri: impl Into<String>) -> Self {
        Self::new(Method::GET, uri)
    }

    fn post(uri: impl Into<String>) -> Self {
        Self::new(Method::POST, uri)
    }

    fn patch(uri: impl Into<String>) -> Self {
        Self::new(Method::PATCH, uri)
    }

    fn delete(uri: impl Into<String>) -> Self {
        Self::new(Method::DELETE, uri)
    }

    fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The session cookie only, no CSRF header.
    fn cookie(self, user: &Signed) -> Self {
        self.header(header::COOKIE, user.cookie.clone())
    }

    /// As `user`: session cookie and CSRF header.
    fn by(self, user: &Signed) -> Self {
        self.cookie(user).header(
            header::HeaderName::from_static(CSRF_HEADER),
            user.csrf.clone(),
        )
    }

    fn json(self, body: Value) -> Self {
        self.raw(Some("application/json"), body.to_string())
    }

    fn raw(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        if let Some(content_type) = content_type {
            self = self.header(header::CONTENT_TYPE, content_type);
        }
        self.body = body.into();
        self
    }

    /// From another client address (the default is [`OFFICE`]).
    fn from(mut self, client: [u8; 4]) -> Self {
        self.client = client;
        self
    }

    fn build(self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method).uri(self.uri);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        let mut request = builder.body(Body::from(self.body)).expect("valid request");
        // What `into_make_service_with_connect_info` provides on a real socket. (The
        // server reads this extension directly, so `MockConnectInfo` is not enough:
        // see `mock_connect_info_supplies_the_client_address`.)
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((self.client, 40000))));
        request
    }
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status, whatever the body.
    #[track_caller]
    fn expect_status(&self, status: StatusCode, what: &str) {
        assert_eq!(
            self.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&self.body)
        );
    }

    /// Asserts the status; returns the JSON body (`null` when empty).
    #[track_caller]
    fn check(&self, status: StatusCode, what: &str) -> Value {
        self.expect_status(status, what);
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts an error answer: status, JSON content type, code; returns the message.
    #[track_caller]
    fn error(&self, status: StatusCode, code: &str, what: &str) -> String {
        let body = self.check(status, what);
        assert_eq!(
            self.header(header::CONTENT_TYPE),
            "application/json",
            "{what}"
        );
        assert_eq!(body["error"], code, "{what}: {body}");
        text(&body["message"])
    }

    #[track_caller]
    fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .expect("ASCII header")
            .to_string()
    }

    /// Everything a client can observe except the `date` header.
    fn observable(&self) -> Self {
        let mut headers = self.headers.clone();
        headers.remove(header::DATE);
        Self {
            status: self.status,
            headers,
            body: self.body.clone(),
        }
    }
}

#[track_caller]
fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_string()
}

fn random_meeting_id() -> String {
    MeetingId::from_bytes(random_id_bytes()).to_string()
}

/// Asserts that every reply is observably the same as the first.
#[track_caller]
fn assert_indistinguishable(what: &str, replies: &[(&str, Reply)]) {
    let (first_label, first) = &replies[0];
    for (label, reply) in &replies[1..] {
        assert_eq!(
            reply.observable(),
            first.observable(),
            "{what}: `{label}` differs from `{first_label}`"
        );
    }
}

// ---- tests ----------------------------------------------------------------

#[tokio::test]
async fn health_check_and_openapi_describe_every_route() {
    let server = Server::start().await;
    let health = server.send(Call::get("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(&health.body[..], b"ok");

    let doc = server
        .send(Call::get("/api/openapi.json"))
        .await
        .check(StatusCode::OK, "openapi");
    let paths = doc["paths"].as_object().expect("a paths object");
    for route in [
        "/api/session",
        "/api/organisation",
        "/api/users",
        "/api/users/{id}",
        "/api/devices",
        "/api/devices/{id}",
        "/api/devices/{id}/credential",
        "/api/enrolment-tokens",
        "/api/classifications",
        "/api/meetings",
        "/api/meetings/{id}",
        "/api/meetings/{id}/challenge",
        "/api/meetings/{id}/join",
        "/api/meetings/{id}/preview",
        "/api/audit",
        "/api/audit/export",
        "/api/audit/heads",
    ] {
        assert!(
            paths.contains_key(route),
            "{route} is missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn the_web_app_is_served_under_a_strict_content_security_policy() {
    let web = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        web.path().join("index.html"),
        "<!doctype html><title>Conclave</title>",
    )
    .expect("index.html");
    std::fs::create_dir(web.path().join("assets")).expect("assets dir");
    std::fs::write(web.path().join("assets/app-1234.js"), "console.log(1)").expect("asset");
    let dir = web.path().to_path_buf();
    let server = Server::start_with(move |c| c.web.dir = dir).await;

    // the app's own routes all get the page; the browser routes
    for path in ["/", "/meetings/new", "/meetings/AAAA"] {
        let reply = server.send(Call::get(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.body.starts_with(b"<!doctype html>"), "{path}");
        assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
        let csp = reply.header(header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        // cross-origin isolated: no shared browsing context, nothing embedded from elsewhere
        let isolation = |name: &'static str| reply.header(header::HeaderName::from_static(name));
        assert_eq!(isolation("cross-origin-opener-policy"), "same-origin");
        assert_eq!(isolation("cross-origin-embedder-policy"), "require-corp");
    }
    let asset = server.send(Call::get("/assets/app-1234.js")).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(&asset.body[..], b"console.log(1)");
    assert!(asset.header(header::CACHE_CONTROL).contains("immutable"));
    assert!(asset.header(header::CONTENT_TYPE).contains("javascript"));

    // unknown API paths stay JSON errors, never the page; files do not escape the directory
    let api = server.send(Call::get("/api/nothing/here")).await;
    let body = api.check(StatusCode::NOT_FOUND, "unknown API path");
    assert_eq!(body["error"], "not_found");
    let escape = server.send(Call::get("/../Cargo.toml")).await;
    assert!(!escape.body.windows(9).any(|w| w == b"[package]"));

    // without a built app: a plain 404, the API unaffected
    let bare = Server::start_with(|c| c.web.dir = "/nonexistent/web/dist".into()).await;
    assert_eq!(
        bare.send(Call::get("/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bare.send(Call::get("/healthz")).await.status,
        StatusCode::OK
    );
}

/// `api/mod.rs` says tests drive the router with `oneshot` and no socket, and axum's
/// way to supply the peer address there is `MockConnectInfo`; the server must honour it.
#[tokio::test]
async fn mock_connect_info_supplies_the_client_address() {
    let server = Server::start().await;
    let app = app(server.state.clone()).layer(MockConnectInfo(SocketAddr::from((OFFICE, 40000))));
    let request = Request::post("/api/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"name": "admin", "password": server.admin_password}).to_string(),
        ))
        .expect("valid request");
    let reply = send_to(app, request).await;
    reply.check(StatusCode::OK, "sign in behind MockConnectInfo");
}

#[tokio::test]
async fn sign_in_sets_a_strict_host_only_cookie() {
    let server = Server::start().await;
    let reply = server
        .send(Call::post("/api/session").json(json!({
            "name": "admin",
            "password": server.admin_password,
        })))
        .await;
    let body = reply.check(StatusCode::OK, "sign in");
    let cookie = reply.header(header::SET_COOKIE);
    for part in [
        &format!("{SESSION_COOKIE}=") as &str,
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let csrf = text(&body["csrf_token"]);
    assert!(csrf.len() >= 32, "{csrf}");
    assert_eq!(body["user"]["name"], "admin");
    assert_eq!(body["user"]["role"], "admin");

    let admin = Signed {
        cookie: cookie.split(';').next().expect("pair").to_string(),
        csrf: csrf.clone(),
        id: text(&body["user"]["id"]),
    };
    let session = server
        .send(Call::get("/api/session").cookie(&admin))
        .await
        .check(StatusCode::OK, "whoami");
    assert_eq!(session["csrf_token"], csrf.as_str());
    assert_eq!(session["user"]["id"], admin.id.as_str());
}

#[tokio::test]
async fn failed_sign_ins_are_refused_audited_and_backed_off() {
    // A long first backoff, so that the block cannot lapse while the test runs.
    let server = Server::start_with(|c| c.sessions.login_backoff_base_seconds = 60).await;
    assert_eq!(server.state.config.sessions.free_login_attempts, 3);
    let admin = server.admin().await;
    server.create_user(&admin, "bob", "member").await;

    let wrong = json!({"name": "admin", "password": "not the password"});
    for attempt in 1..=4 {
        let reply = server
            .send(Call::post("/api/session").json(wrong.clone()))
            .await;
        assert!(reply.headers.get(header::SET_COOKIE).is_none());
        let message = reply.error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "wrong password",
        );
        assert_eq!(message, "sign in first", "attempt {attempt}");
    }

    let right = json!({"name": "admin", "password": server.admin_password});
    let throttled = server
        .send(Call::post("/api/session").json(right.clone()))
        .await;
    throttled.error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "right password during backoff",
    );
    assert!(throttled.headers.get(header::SET_COOKIE).is_none());
    let retry: u64 = throttled
        .header(header::RETRY_AFTER)
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");

    // The account name is blocked from everywhere, the address for every name...
    server
        .send(Call::post("/api/session").from(ELSEWHERE).json(right))
        .await
        .check(StatusCode::TOO_MANY_REQUESTS, "blocked name, other client");
    let bob = json!({"name": "bob", "password": PASSWORD});
    server
        .send(Call::post("/api/session").json(bob.clone()))
        .await
        .check(StatusCode::TOO_MANY_REQUESTS, "other name, blocked client");
    // ...but another name from another address is unaffected.
    server
        .send(Call::post("/api/session").from([127, 0, 0, 3]).json(bob))
        .await
        .check(StatusCode::OK, "other name, other client");

    // Refusals during backoff are counted and written once per client per period.
    server
        .state
        .audit
        .flush_refusals(conclave_server::api::now())
        .await
        .expect("flush");
    let entries = server.audit(&admin).await;
    let throttled: Vec<(String, Value)> = entries
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["decision"] == "throttled")
        .map(|e| (text(&e["actor"]), e["reasons"].clone()))
        .collect();
    assert_eq!(
        throttled,
        [
            (
                "client:127.0.0.1".to_string(),
                json!(["sign-in attempts refused during backoff: 2"])
            ),
            (
                "client:127.0.0.2".to_string(),
                json!(["sign-in attempts refused during backoff: 1"])
            ),
        ]
    );
    let logins: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["target"] == "account:admin")
        .collect();
    let failed: Vec<&&Value> = logins
        .iter()
        .filter(|e| e["decision"] == "failed")
        .collect();
    assert_eq!(failed.len(), 4, "{logins:#?}");
    for entry in &failed {
        assert_eq!(entry["actor"], "client:127.0.0.1");
        assert_eq!(entry["reasons"], json!(["wrong password"]));
    }
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token_and_logout_ends_the_session() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let forged = Signed {
        csrf: "not-the-token".into(),
        ..admin.clone()
    };
    let device = json!({
        "name": "laptop",
        "public_key": DeviceKey::generate(&mut rand::rngs::OsRng).public().to_string(),
    });
    let user_uri = format!("/api/users/{}", admin.id);
    let attempts = [
        (
            "POST without token",
            Call::post("/api/devices")
                .cookie(&admin)
                .json(device.clone()),
        ),
        (
            "POST with a wrong token",
            Call::post("/api/devices").by(&forged).json(device.clone()),
        ),
        (
            "PATCH without token",
            Call::patch(&*user_uri).cookie(&admin).json(json!({})),
        ),
        (
            "PATCH with a wrong token",
            Call::patch(&*user_uri).by(&forged).json(json!({})),
        ),
        (
            "DELETE without token",
            Call::delete("/api/session").cookie(&admin),
        ),
        (
            "DELETE with a wrong token",
            Call::delete("/api/session").by(&forged),
        ),
    ];
    for (what, call) in attempts {
        let message = server
            .send(call)
            .await
            .error(StatusCode::FORBIDDEN, "csrf", what);
        assert!(message.contains(CSRF_HEADER), "{what}: {message}");
    }

    // Reads need no token, and the refused DELETE did not sign anybody out.
    server
        .send(Call::get("/api/session").cookie(&admin))
        .await
        .check(StatusCode::OK, "GET without token");
    server
        .send(Call::get("/api/devices").cookie(&admin))
        .await
        .check(StatusCode::OK, "GET without token");
    // With the token the same request goes through.
    server
        .send(Call::post("/api/devices").by(&admin).json(device))
        .await
        .check(StatusCode::CREATED, "POST with token");

    let logout = server.send(Call::delete("/api/session").by(&admin)).await;
    logout.check(StatusCode::NO_CONTENT, "logout");
    let cleared = logout.header(header::SET_COOKIE);
    assert!(
        cleared.starts_with(&format!("{SESSION_COOKIE}=;")) && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    server
        .send(Call::get("/api/session").cookie(&admin))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated", "after logout");
    server
        .send(Call::delete("/api/session").by(&admin))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated", "second logout");
}

#[tokio::test]
async fn bad_input_gets_a_precise_json_4xx() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let limit = server.state.config.server.max_body_bytes;
    assert_eq!(limit, 65536);
    let oversized = {
        let (head, tail) = (r#"{"name":"admin","password":""#, r#""}"#);
        format!(
            "{head}{}{tail}",
            "x".repeat(70_000 - head.len() - tail.len())
        )
    };
    assert_eq!(oversized.len(), 70_000);

    for (uri, as_admin) in [("/api/session", false), ("/api/meetings", true)] {
        let call = || {
            let call = Call::post(uri);
            if as_admin {
                call.by(&admin)
            } else {
                call
            }
        };
        let json = Some("application/json");
        let cases = [
            (
                "malformed JSON",
                call().raw(json, "{'name': 'admin'}"),
                StatusCode::BAD_REQUEST,
                "",
            ),
            (
                "unknown field",
                call().raw(json, r#"{"colour": "blue"}"#),
                StatusCode::UNPROCESSABLE_ENTITY,
                "colour",
            ),
            (
                "text/plain",
                call().raw(Some("text/plain"), "{}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "",
            ),
            (
                "no content type",
                call().raw(None, "{}"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "",
            ),
            (
                "oversized body",
                call().raw(json, oversized.clone()),
                StatusCode::PAYLOAD_TOO_LARGE,
                "",
            ),
        ];
        for (what, request, status, mention) in cases {
            let what = format!("{what} to {uri}");
            let message = server.send(request).await.error(status, "bad_body", &what);
            assert!(message.contains(mention), "{what}: {message}");
        }
    }

    let message = server
        .send(
            Call::patch("/api/users/not-a-user-id")
                .by(&admin)
                .json(json!({"role": "member"})),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "bad user id");
    assert_eq!(message, "malformed user id");

    // (paths outside /api belong to the web app: the_web_app_is_served_...)
    for uri in ["/api/nowhere", "/api/users/x/y"] {
        let message = server.send(Call::get(uri).cookie(&admin)).await.error(
            StatusCode::NOT_FOUND,
            "not_found",
            uri,
        );
        assert_eq!(message, "no such resource");
    }
}

#[tokio::test]
async fn roles_gate_accounts_meetings_and_the_audit_log() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let member = server.add_user(&admin, "mia", "member").await;
    let organiser = server.add_user(&admin, "olga", "organiser").await;
    let auditor = server.add_user(&admin, "aude", "auditor").await;

    let message = server
        .send(Call::post("/api/users").by(&member).json(json!({
            "name": "eve", "display_name": "Eve", "role": "admin", "password": PASSWORD,
        })))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "member creates a user");
    assert_eq!(message, "only admins may create accounts");
    server
        .send(Call::get("/api/users").cookie(&organiser))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "organiser lists users");

    let start = now();
    let meeting = json!({
        "title": "Planning",
        "classification": "internal",
        "starts_at": start.to_rfc3339(),
        "ends_at": start.saturating_add(std::time::Duration::from_secs(1800)).to_rfc3339(),
    });
    let message = server
        .send(
            Call::post("/api/meetings")
                .by(&member)
                .json(meeting.clone()),
        )
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "member schedules");
    assert_eq!(message, "only admins and organisers may schedule meetings");
    let created = server
        .send(Call::post("/api/meetings").by(&organiser).json(meeting))
        .await
        .check(StatusCode::CREATED, "organiser schedules");
    assert_eq!(created["your_role"], "host");
    assert_eq!(created["organiser_id"], organiser.id.as_str());

    for uri in ["/api/audit", "/api/audit/export", "/api/audit/heads"] {
        server
            .send(Call::get(uri).cookie(&auditor))
            .await
            .expect_status(StatusCode::OK, &format!("auditor reads {uri}"));
        for who in [&member, &organiser] {
            server.send(Call::get(uri).cookie(who)).await.error(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("{uri} for non-auditor"),
            );
        }
    }
}

#[tokio::test]
async fn meeting_existence_is_not_revealed() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let organiser = server.add_user(&admin, "olga", "organiser").await;
    let _invitee = server.add_user(&admin, "ivan", "member").await;
    let outsider = server.add_user(&admin, "otto", "member").await;
    let internal = server.schedule(&organiser, "internal", &[]).await;
    let secret = server.schedule(&organiser, "secret", &["ivan"]).await;
    let bogus_join = json!({
        "credential": URL_SAFE_NO_PAD.encode([7u8; 200]),
        "challenge": URL_SAFE_NO_PAD.encode([1u8; 32]),
        "signature": URL_SAFE_NO_PAD.encode([2u8; 64]),
    });

    type MakeCall = fn(&str, &Value) -> Call;
    let requests: [(&str, MakeCall); 4] = [
        ("GET", |id, _| Call::get(format!("/api/meetings/{id}"))),
        ("PATCH", |id, _| {
            Call::patch(format!("/api/meetings/{id}")).json(json!({"title": "Renamed"}))
        }),
        ("DELETE", |id, _| {
            Call::delete(format!("/api/meetings/{id}"))
        }),
        ("join", |id, body| {
            Call::post(format!("/api/meetings/{id}/join")).json(body.clone())
        }),
    ];
    for real in [&internal, &secret] {
        for (what, request) in requests {
            let random = random_meeting_id();
            let anonymous = [
                ("signed out, real id", request(real, &bogus_join)),
                ("signed out, random id", request(&random, &bogus_join)),
                ("signed out, malformed id", request("x", &bogus_join)),
            ];
            let signed_in = [
                (
                    "outsider, real id",
                    request(real, &bogus_join).by(&outsider),
                ),
                (
                    "outsider, random id",
                    request(&random, &bogus_join).by(&outsider),
                ),
                (
                    "outsider, malformed id",
                    request("x", &bogus_join).by(&outsider),
                ),
            ];
            let mut anonymous_replies = Vec::new();
            for (label, call) in anonymous {
                anonymous_replies.push((label, server.send(call).await));
            }
            let mut signed_in_replies = Vec::new();
            for (label, call) in signed_in {
                signed_in_replies.push((label, server.send(call).await));
            }
            let message = anonymous_replies[0]
                .1
                .error(StatusCode::NOT_FOUND, "not_found", what);
            assert_eq!(message, "no such meeting");
            assert_indistinguishable(what, &anonymous_replies);
            if what == "join" {
                // Signed in, an unknown challenge is refused before any meeting is
                // looked up: the same 400 for every id.
                signed_in_replies[0]
                    .1
                    .error(StatusCode::BAD_REQUEST, "bad_request", what);
                assert_indistinguishable(what, &signed_in_replies);
            } else {
                anonymous_replies.extend(signed_in_replies);
                assert_indistinguishable(what, &anonymous_replies);
            }
        }
    }

    // The refused PATCH and DELETE changed nothing.
    let shown = server
        .send(Call::get(format!("/api/meetings/{secret}")).cookie(&organiser))
        .await
        .check(StatusCode::OK, "host reads");
    assert_eq!(shown["title"], "secret meeting");
    assert_eq!(shown["cancelled"], false);

    // A full join by an outsider with a real device and a fresh, correctly signed
    // challenge: the invitees-only meeting answers exactly like a random id.
    let (key, device) = server.register_device(&outsider, None).await;
    let credential = text(&device["credential"]);
    let to_secret = server
        .join(&outsider, &secret, &key, &credential, OFFICE)
        .await;
    let random = random_meeting_id();
    let to_random = server
        .join(&outsider, &random, &key, &credential, OFFICE)
        .await;
    to_random.error(StatusCode::NOT_FOUND, "not_found", "join a random id");
    assert_indistinguishable(
        "signed join",
        &[("random id", to_random), ("secret meeting", to_secret)],
    );
}

#[tokio::test]
async fn meeting_lists_show_roles_and_cancelled_meetings_refuse_joins() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let host = server.add_user(&admin, "olga", "organiser").await;
    let invitee = server.add_user(&admin, "ivan", "member").await;
    let outsider = server.add_user(&admin, "otto", "member").await;
    let meeting = server.schedule(&host, "secret", &["ivan"]).await;

    for (who, role) in [(&host, "host"), (&invitee, "invitee")] {
        let list = server
            .send(Call::get("/api/meetings").cookie(who))
            .await
            .check(StatusCode::OK, "list");
        let list = list.as_array().expect("array");
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["id"], meeting.as_str());
        assert_eq!(list[0]["your_role"], role);
        assert_eq!(list[0]["cancelled"], false);
    }
    let list = server
        .send(Call::get("/api/meetings").cookie(&outsider))
        .await
        .check(StatusCode::OK, "outsider's list");
    assert_eq!(list, json!([]));

    let shown = server
        .send(Call::get(format!("/api/meetings/{meeting}")).cookie(&invitee))
        .await
        .check(StatusCode::OK, "invitee reads");
    assert_eq!(shown["your_role"], "invitee");
    let message = server
        .send(
            Call::patch(format!("/api/meetings/{meeting}"))
                .by(&invitee)
                .json(json!({"title": "Mine"})),
        )
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "invitee edits");
    assert!(message.contains("only hosts"), "{message}");
    server
        .send(Call::delete(format!("/api/meetings/{meeting}")).by(&invitee))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "invitee cancels");

    server
        .send(Call::delete(format!("/api/meetings/{meeting}")).by(&host))
        .await
        .check(StatusCode::NO_CONTENT, "host cancels");
    let list = server
        .send(Call::get("/api/meetings").cookie(&invitee))
        .await
        .check(StatusCode::OK, "list after cancel");
    assert_eq!(list[0]["cancelled"], true);

    let (key, device) = server.register_device(&invitee, None).await;
    let reply = server
        .join(
            &invitee,
            &meeting,
            &key,
            &text(&device["credential"]),
            OFFICE,
        )
        .await;
    let decision = reply.check(StatusCode::FORBIDDEN, "join a cancelled meeting");
    assert_eq!(decision["outcome"], "deny");
    assert!(decision["ticket"].is_null());
    let codes: Vec<&Value> = decision["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| &r["code"])
        .collect();
    assert!(codes.contains(&&json!("cancelled")), "{decision}");
}

#[tokio::test]
async fn joining_checks_credentials_trust_networks_and_revocation() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let organiser = server.add_user(&admin, "olga", "organiser").await;
    let member = server.add_user(&admin, "mia", "member").await;
    let internal = server.schedule(&organiser, "internal", &["mia"]).await;
    let secret = server.schedule(&organiser, "secret", &["mia"]).await;

    let (key, registered) = server.register_device(&member, None).await;
    assert_eq!(registered["device"]["trust"], "personal");
    assert_eq!(registered["device"]["user_id"], member.id.as_str());
    let device_id = text(&registered["device"]["id"]);
    let personal = text(&registered["credential"]);

    // Admitted from the office network, with a ticket.
    let challenge = server.challenge(&member, &internal).await;
    let decision = server
        .join_with(&member, &internal, &key, &personal, &challenge, OFFICE)
        .await
        .check(StatusCode::OK, "join internal");
    assert_eq!(decision["outcome"], "admit");
    assert_eq!(decision["reasons"], json!([]));
    assert_eq!(
        decision["network"],
        json!({"trusted": true, "name": "office"})
    );
    assert_eq!(decision["device_trust"], "personal");
    assert!(text(&decision["ticket"]).len() > 100, "{decision}");

    // A challenge is good for one join.
    server
        .join_with(&member, &internal, &key, &personal, &challenge, OFFICE)
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "challenge reused");

    // Promotion makes the old credential out of date; a fresh one carries the trust.
    let promoted = server
        .send(
            Call::patch(format!("/api/devices/{device_id}"))
                .by(&admin)
                .json(json!({"trust": "managed"})),
        )
        .await
        .check(StatusCode::OK, "promote");
    assert_eq!(promoted["trust"], "managed");
    let message = server
        .join(&member, &internal, &key, &personal, OFFICE)
        .await
        .error(StatusCode::CONFLICT, "conflict", "stale credential");
    assert!(message.contains("out of date"), "{message}");
    let fresh = server
        .send(Call::get(format!("/api/devices/{device_id}/credential")).cookie(&member))
        .await
        .check(StatusCode::OK, "fresh credential");
    assert_eq!(fresh["device"]["trust"], "managed");
    let managed = text(&fresh["credential"]);
    assert_ne!(managed, personal);
    let decision = server
        .join(&member, &internal, &key, &managed, OFFICE)
        .await
        .check(StatusCode::OK, "join with the fresh credential");
    assert_eq!(decision["outcome"], "admit");
    assert_eq!(decision["device_trust"], "managed");

    // Secret meetings refuse untrusted networks, in plain words.
    let decision = server
        .join(&member, &secret, &key, &managed, ELSEWHERE)
        .await
        .check(StatusCode::FORBIDDEN, "secret from elsewhere");
    assert_eq!(decision["outcome"], "deny");
    assert_eq!(
        decision["reasons"],
        json!([{
            "code": "untrusted_network_denied",
            "message": "secret meetings can only be joined from a trusted network; \
                        you are connecting from an untrusted network",
        }])
    );
    assert_eq!(decision["network"], json!({"trusted": false, "name": null}));
    assert!(decision["ticket"].is_null());
    // The same device from the office is admitted.
    server
        .join(&member, &secret, &key, &managed, OFFICE)
        .await
        .check(StatusCode::OK, "secret from the office");

    // A revoked device can neither join nor get a credential.
    server
        .send(Call::delete(format!("/api/devices/{device_id}")).by(&member))
        .await
        .check(StatusCode::NO_CONTENT, "revoke");
    let message = server
        .join(&member, &internal, &key, &managed, OFFICE)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "revoked device joins");
    assert!(message.contains("revoked"), "{message}");
    server
        .send(Call::get(format!("/api/devices/{device_id}/credential")).cookie(&member))
        .await
        .error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "credential for a revoked device",
        );
}

#[tokio::test]
async fn a_preview_tells_the_decision_before_joining_and_grants_nothing() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let organiser = server.add_user(&admin, "olga", "organiser").await;
    let member = server.add_user(&admin, "mia", "member").await;
    let outsider = server.add_user(&admin, "otto", "member").await;
    let secret = server.schedule(&organiser, "secret", &["mia"]).await;
    let (_, registered) = server.register_device(&member, None).await;
    let credential = text(&registered["credential"]);
    let preview = |who: &Signed, meeting: &str, credential: &str, client: [u8; 4]| {
        Call::post(format!("/api/meetings/{meeting}/preview"))
            .by(who)
            .from(client)
            .json(json!({ "credential": credential }))
    };

    let codes = |decision: &Value| -> Vec<String> {
        decision["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .map(|r| text(&r["code"]))
            .collect()
    };
    // a personal device from an untrusted network: the refusal and every reason, in words
    let refused = server
        .send(preview(&member, &secret, &credential, ELSEWHERE))
        .await
        .check(StatusCode::OK, "preview from elsewhere");
    assert_eq!(refused["outcome"], "deny");
    assert_eq!(
        codes(&refused),
        ["device_not_trusted", "untrusted_network_denied"]
    );
    assert!(refused["reasons"][1]["message"]
        .as_str()
        .is_some_and(|m| m.contains("trusted network")));
    assert!(refused["ticket"].is_null());
    // from the office only the device stands in the way; a managed one is let in
    let refused = server
        .send(preview(&member, &secret, &credential, OFFICE))
        .await
        .check(StatusCode::OK, "preview from the office");
    assert_eq!(codes(&refused), ["device_not_trusted"]);
    let device_id = text(&registered["device"]["id"]);
    server
        .send(
            Call::patch(format!("/api/devices/{device_id}"))
                .by(&admin)
                .json(json!({"trust": "managed"})),
        )
        .await
        .check(StatusCode::OK, "promote");
    let audit_before = server.audit(&admin).await.len();
    let credential = text(
        &server
            .send(Call::get(format!("/api/devices/{device_id}/credential")).cookie(&member))
            .await
            .check(StatusCode::OK, "fresh credential")["credential"],
    );
    let admitted = server
        .send(preview(&member, &secret, &credential, OFFICE))
        .await
        .check(StatusCode::OK, "preview from the office");
    assert!(
        ["admit", "lobby"].contains(&admitted["outcome"].as_str().unwrap_or("")),
        "{admitted}"
    );
    assert_eq!(admitted["network"]["name"], "office");
    assert!(admitted["ticket"].is_null());
    assert_eq!(
        server.audit(&admin).await.len(),
        audit_before,
        "a preview is not a join attempt"
    );

    // someone outside the audience, and a meeting that does not exist, look the same
    let (_, theirs) = server.register_device(&outsider, None).await;
    let theirs = text(&theirs["credential"]);
    let hidden = server
        .send(preview(&outsider, &secret, &theirs, OFFICE))
        .await;
    let missing = server
        .send(preview(&outsider, &random_meeting_id(), &theirs, OFFICE))
        .await;
    assert_indistinguishable("preview", &[("hidden", hidden), ("missing", missing)]);
    // another account's credential, garbage, no session
    server
        .send(preview(&outsider, &secret, &credential, OFFICE))
        .await
        .error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "someone else's credential",
        );
    server
        .send(preview(&member, &secret, "garbage", OFFICE))
        .await
        .error(StatusCode::BAD_REQUEST, "bad_request", "garbage credential");
    let anonymous = server
        .send(
            Call::post(format!("/api/meetings/{secret}/preview"))
                .json(json!({ "credential": credential })),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_enrolment_token_registers_one_managed_device() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let member = server.add_user(&admin, "mia", "member").await;

    server
        .send(
            Call::post("/api/enrolment-tokens")
                .by(&member)
                .json(json!({})),
        )
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "member issues a token");
    let issued = server
        .send(
            Call::post("/api/enrolment-tokens")
                .by(&admin)
                .json(json!({})),
        )
        .await
        .check(StatusCode::CREATED, "issue token");
    let token = text(&issued["token"]);

    let (_, registered) = server.register_device(&member, Some(&token)).await;
    assert_eq!(registered["device"]["trust"], "managed");

    let again = DeviceKey::generate(&mut rand::rngs::OsRng);
    server
        .send(Call::post("/api/devices").by(&member).json(json!({
            "name": "phone",
            "public_key": again.public().to_string(),
            "enrolment_token": token,
        })))
        .await
        .error(StatusCode::FORBIDDEN, "forbidden", "token used twice");
    // Nothing was stored for the refused registration.
    let devices = server
        .send(Call::get("/api/devices").cookie(&member))
        .await
        .check(StatusCode::OK, "list devices");
    assert_eq!(devices.as_array().expect("array").len(), 1);
}

#[tokio::test]
async fn meeting_lookups_are_rate_limited_per_client() {
    let server = Server::start_with(|c| c.limits.meeting_lookups_per_minute_per_client = 5).await;
    let lookup = || Call::get(format!("/api/meetings/{}", random_meeting_id()));
    for n in 1..=5 {
        server.send(lookup()).await.error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("lookup {n}"),
        );
    }
    let limited = server.send(lookup()).await;
    limited.error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "lookup 6",
    );
    let retry: u64 = limited
        .header(header::RETRY_AFTER)
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    server.send(lookup().from(ELSEWHERE)).await.error(
        StatusCode::NOT_FOUND,
        "not_found",
        "another client",
    );
}

#[tokio::test]
async fn the_audit_log_is_consecutive_exportable_and_verifies() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let organiser = server.add_user(&admin, "olga", "organiser").await;
    server.schedule(&organiser, "internal", &[]).await;
    server.register_device(&organiser, None).await;
    server
        .send(
            Call::post("/api/session")
                .json(json!({"name": "olga", "password": "wrong wrong wrong"})),
        )
        .await
        .check(StatusCode::UNAUTHORIZED, "failed sign-in");

    let before = server.audit(&admin).await;
    let seqs: Vec<u64> = before
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
    let actions: Vec<&str> = before
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    for action in [
        "system.init",
        "user.create",
        "auth.login",
        "meeting.create",
        "device.register",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    for pair in before.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }

    // The export records itself first, so it holds every earlier entry plus its own.
    let export = server
        .send(Call::get("/api/audit/export").cookie(&admin))
        .await;
    export.expect_status(StatusCode::OK, "export");
    assert_eq!(export.header(header::CONTENT_TYPE), "application/x-ndjson");
    let text = std::str::from_utf8(&export.body).expect("UTF-8 export");
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), before.len() + 1);
    assert_eq!(lines[..before.len()], before[..]);
    let own = lines.last().expect("the export's own entry");
    assert_eq!(own["action"], "audit.export");
    assert_eq!(own["actor"], format!("user:{}", admin.id).as_str());
    let after = server.audit(&admin).await;
    assert_eq!(after, lines);

    let heads = server
        .send(Call::get("/api/audit/heads").cookie(&admin))
        .await
        .check(StatusCode::OK, "heads");
    assert!(!heads.as_array().expect("array").is_empty());

    let report =
        conclave_server::audit_log::verify_stored(&server.state.store, &server.state.org.public())
            .await
            .expect("the stored log verifies");
    assert_eq!(report.entries, lines.len() as u64);
}
