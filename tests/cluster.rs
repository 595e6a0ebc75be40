//! A master that is a Redis (or Valkey) Cluster: many semaphores spread over the shards,
//! each on the shard of its hash tag, no more than N holders of any, and wake-ups over
//! sharded pub/sub on the owning shard. Runs with `--features cluster` (`make test` does).

#![cfg(feature = "cluster")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis_semaphore::AsyncSemaphore;
use testkit::cluster::Cluster;
use testkit::{Observer, Server, eventually};

fn on(cluster: &Cluster, name: &str, permits: u32) -> redis_semaphore::Builder {
    AsyncSemaphore::builder(name, permits)
        .cluster(cluster.urls())
        .request_timeout(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_semaphores_spread_over_the_shards_never_exceed_n() {
    let cluster = Cluster::start(3);
    let observer = Server::start();
    let names: Vec<String> = (0..9).map(|i| format!("tenant-{i}")).collect();
    let owners: HashSet<u16> = names
        .iter()
        .map(|n| cluster.owner(&format!("semaphore:{{{n}}}:config")).port())
        .collect();
    assert!(owners.len() >= 2, "the names should land on several shards");

    let mut tasks = Vec::new();
    for name in &names {
        for _ in 0..3 {
            let sem = on(&cluster, name, 2).build().await.unwrap();
            let (url, name) = (observer.url(), name.clone());
            tasks.push(tokio::spawn(async move {
                let observer = Observer::connect_named(&url, &name).await;
                for _ in 0..8 {
                    let permit = sem.acquire().await.unwrap();
                    let inside = observer.enter().await;
                    assert!(inside <= 2, "{inside} holders of 2 in {name}");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    observer.exit().await;
                    permit.release().await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    for name in &names {
        let (max, inside) = Observer::connect_named(&observer.url(), name)
            .await
            .seen()
            .await;
        assert_eq!(
            (max, inside),
            (2, 0),
            "{name}: 3 handles on 2 permits fill them"
        );
        // Every key of the semaphore is on the shard that owns its tag.
        let owner = cluster.owner(&format!("semaphore:{{{name}}}:config"));
        assert_eq!(
            owner.int(&["EXISTS", &format!("semaphore:{{{name}}}:config")]),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_wake_on_sharded_pub_sub() {
    let cluster = Cluster::start(3);
    let holder = on(&cluster, "jobs", 1).build().await.unwrap();
    let waiter = on(&cluster, "jobs", 1).build().await.unwrap();
    let channel = "semaphore:{jobs}:wake";
    let owner = cluster.owner(channel);
    for _ in 0..3 {
        let permit = holder.acquire().await.unwrap();
        let waiting = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.acquire().await.unwrap() })
        };
        eventually("the waiter subscribed on the owning shard", || async {
            owner.subscribers(channel, true) == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        permit.release().await.unwrap();
        let released = Instant::now();
        let permit = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .unwrap()
            .unwrap();
        let took = released.elapsed();
        permit.release().await.unwrap();
        println!("hand-off on a cluster: {took:?}");
    }
}

#[tokio::test]
async fn a_cluster_is_one_master_to_the_rest_of_the_api() {
    let cluster = Cluster::start(3);
    let sem = on(&cluster, "ops", 2).build().await.unwrap();
    let permit = sem.acquire_many(2).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 0);
    let holders = sem.holders().await.unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0].slots, vec![0, 1]);
    assert!(holders[0].masters[0].master.starts_with("cluster("));
    permit.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 2);
    let opened = AsyncSemaphore::open("ops")
        .cluster(cluster.urls())
        .build()
        .await
        .unwrap();
    assert_eq!(opened.initial_value(), 2);
    assert!(opened.delete().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_the_cluster_rule_can_do_everything() {
    let cluster = Cluster::start(3);
    for node in &cluster.nodes {
        let mut args = vec!["ACL", "SETUSER", "sem", "on", ">secret"];
        args.extend(redis_semaphore::ACL_RULE_CLUSTER.split_whitespace());
        node.cmd(&args);
    }
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("redis://sem:secret@127.0.0.1:{}", n.port()))
        .collect();
    let build = || {
        AsyncSemaphore::builder("acl", 1)
            .cluster(urls.clone())
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
    let owner = cluster.owner("semaphore:{acl}:wake");
    eventually("the waiter subscribed", || async {
        owner.subscribers("semaphore:{acl}:wake", true) == 1
    })
    .await;
    permit.release().await.unwrap();
    let permit = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(holder.holders().await.unwrap().len(), 1);
    permit.release().await.unwrap();
    assert!(holder.delete().await.unwrap());
    drop((holder, waiter));
    tokio::time::sleep(Duration::from_millis(200)).await;
    for node in &cluster.nodes {
        let denials = node.acl_denials();
        assert!(
            denials.is_empty(),
            "ACL denials on {}: {denials:?}",
            node.port()
        );
    }
}
