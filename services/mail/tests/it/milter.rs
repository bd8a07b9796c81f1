//! The From-header milter over the milter protocol, in process: indymilter-test plays Postfix
//! (macros, MAIL FROM, headers, end of headers) against `fleet_mail::milter::serve`.

use std::{ffi::CString, time::Duration};

use indymilter_test::{Actions, MacroStage, ProtoOpts, Status, TestConnection};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

const LOGIN: &str = "app@example.test";

struct Milter {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start() -> Milter {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(fleet_mail::milter::serve(listener, async {
        let _ = stopped.await;
    }));
    Milter { addr, stop, task }
}

impl Milter {
    async fn connect(&self) -> TestConnection {
        let conn = TestConnection::configure()
            .read_timeout(Duration::from_secs(10))
            .write_timeout(Duration::from_secs(10))
            .open_tcp(self.addr)
            .await
            .unwrap();
        // It asked to skip CONNECT and HELO: Postfix goes straight to MAIL FROM.
        assert!(
            conn.negotiated_opts()
                .contains(ProtoOpts::NO_CONNECT | ProtoOpts::NO_HELO)
        );
        conn
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// MAIL FROM as an authenticated session (the macro Postfix sends before it).
async fn mail(conn: &mut TestConnection, login: Option<&str>) -> Status {
    if let Some(login) = login {
        conn.macros(
            MacroStage::Mail,
            [("i", "4ABCDEF"), ("{auth_authen}", login)],
        )
        .await
        .unwrap();
    }
    conn.mail([format!("<{}>", login.unwrap_or("someone@other.test"))])
        .await
        .unwrap()
}

/// Sends the headers and returns the verdict at the end of them.
async fn headers(conn: &mut TestConnection, headers: &[(&str, &str)]) -> Status {
    for (name, value) in headers {
        assert_eq!(conn.header(*name, *value).await.unwrap(), Status::Continue);
    }
    conn.eoh().await.unwrap()
}

fn rejected(text: &str) -> Status {
    Status::Reject {
        message: Some(CString::new(text).unwrap()),
    }
}

#[tokio::test]
async fn negotiates_only_what_it_reads() {
    let milter = start().await;
    let conn = TestConnection::open(milter.addr).await.unwrap();
    let macros = conn.requested_macros();
    let mail = macros.get(&MacroStage::Mail).unwrap().to_str().unwrap();
    assert!(mail.split(' ').any(|m| m == "{auth_authen}"), "{mail}");
    assert!(conn.negotiated_opts().contains(ProtoOpts::NO_BODY));
    // It changes nothing in a message.
    assert_eq!(conn.negotiated_actions(), Actions::REQUEST_MACROS);
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn accepts_its_own_from_and_refuses_others_on_one_connection() {
    let milter = start().await;
    let mut conn = milter.connect().await;

    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    let status = headers(
        &mut conn,
        &[
            ("Subject", "hello"),
            ("From", "=?utf-8?q?J=C3=B6rg?=\n <APP@example.test>"),
            ("To", "someone@other.test"),
        ],
    )
    .await;
    assert_eq!(status, Status::Accept);

    // The next message of the same session starts afresh.
    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    let status = headers(
        &mut conn,
        &[("From", "\"app@example.test\" <evil@other.test>")],
    )
    .await;
    assert_eq!(
        status,
        rejected(
            "550 5.7.1 the From header names another address: the From header must be \
             app@example.test, the address this account logs in as"
        )
    );

    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    let status = headers(&mut conn, &[("From", LOGIN), ("from", LOGIN)]).await;
    assert_eq!(
        status,
        rejected(
            "550 5.7.1 there is more than one From header: the From header must be \
             app@example.test, the address this account logs in as"
        )
    );

    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    let status = headers(&mut conn, &[("From", LOGIN), ("Sender", "evil@other.test")]).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");

    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    let status = headers(&mut conn, &[("Subject", "no from")]).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");

    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn an_aborted_message_leaves_nothing_behind() {
    let milter = start().await;
    let mut conn = milter.connect().await;

    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    assert_eq!(conn.header("From", LOGIN).await.unwrap(), Status::Continue);
    conn.abort().await.unwrap();

    // Had the aborted message's From stayed, this one would have two.
    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    assert_eq!(headers(&mut conn, &[("From", LOGIN)]).await, Status::Accept);

    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn unauthenticated_sessions_are_not_its_business() {
    let milter = start().await;
    let mut conn = milter.connect().await;
    assert_eq!(mail(&mut conn, None).await, Status::Accept);
    conn.close().await.unwrap();
    milter.stop().await;
}

#[tokio::test]
async fn a_huge_from_is_refused_without_keeping_it() {
    let milter = start().await;
    let mut conn = milter.connect().await;
    assert_eq!(mail(&mut conn, Some(LOGIN)).await, Status::Continue);
    let long = format!("{} <{LOGIN}>", "a".repeat(60_000));
    let status = headers(&mut conn, &[("From", &long)]).await;
    assert_eq!(
        status,
        rejected(
            "550 5.7.1 the From header is too long: the From header must be app@example.test, \
             the address this account logs in as"
        )
    );
    conn.close().await.unwrap();
    milter.stop().await;
}
