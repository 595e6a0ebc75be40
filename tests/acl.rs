//! ACL users: one with exactly [`redis_semaphore::ACL_RULE`] does everything the library
//! does; one without `evalsha` gets a clear error at once.

use std::time::{Duration, Instant};

use redis_semaphore::{ACL_RULE, AsyncSemaphore, Error};
use testkit::{Server, eventually};

fn set_user(server: &Server, user: &str, rule: &str) {
    let mut args = vec!["ACL", "SETUSER", user, "on", ">secret"];
    args.extend(rule.split_whitespace());
    server.cmd(&args);
}

fn url(server: &Server, user: &str) -> String {
    format!("redis://{user}:secret@127.0.0.1:{}", server.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_exactly_the_documented_rule_can_do_everything() {
    let server = Server::start();
    set_user(&server, "sem", ACL_RULE);
    let build = || {
        AsyncSemaphore::builder("acl", 1)
            .master(url(&server, "sem"))
            .lease(Duration::from_millis(600))
            .request_timeout(Duration::from_millis(200))
            .build()
    };
    let holder = build().await.unwrap();
    let waiter = build().await.unwrap();
    let permit = holder.acquire().await.unwrap();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.acquire().await.unwrap() })
    };
    eventually("the waiter subscribed", || async {
        server.subscribers("semaphore:{acl}:wake", false) == 1
    })
    .await;
    // Held across a renewal.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(permit.is_valid());
    permit.release().await.unwrap();
    let permit = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.holders().await.unwrap().len(), 1);
    assert_eq!(holder.value().await.unwrap(), 0);
    permit.release().await.unwrap();
    holder.set_permits(2).await.unwrap();
    let opened = AsyncSemaphore::open("acl")
        .master(url(&server, "sem"))
        .build()
        .await
        .unwrap();
    assert_eq!(opened.initial_value(), 2);
    assert!(opened.delete().await.unwrap());
    // Dropping the handles unsubscribes their wake-up listener.
    drop((holder, waiter, opened));
    eventually("unsubscribed", || async {
        server.subscribers("semaphore:{acl}:wake", false) == 0
    })
    .await;
    // Nothing was refused along the way.
    let denials = server.acl_denials();
    assert!(denials.is_empty(), "ACL denials: {denials:?}");
}

#[tokio::test]
async fn a_user_without_evalsha_gets_a_clear_error_at_once() {
    let server = Server::start();
    let rule = ACL_RULE.replace("+evalsha", "");
    set_user(&server, "noscript", &rule);
    let started = Instant::now();
    let error = AsyncSemaphore::builder("acl", 1)
        .master(url(&server, "noscript"))
        .request_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!error.is_transient(), "waiting cannot fix it: {error}");
    assert!(matches!(error, Error::Redis { .. }), "{error}");
    let text = error.to_string();
    let text = text.to_lowercase();
    assert!(
        text.contains("noperm") && text.contains("evalsha"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error() {
    let server = Server::start();
    set_user(&server, "sem", ACL_RULE);
    let error = AsyncSemaphore::builder("acl", 1)
        .master(format!("redis://sem:wrong@127.0.0.1:{}", server.port()))
        .request_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert!(
        error.to_string().to_lowercase().contains("password"),
        "{error}"
    );
}
