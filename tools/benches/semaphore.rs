//! Round-trip benchmarks: what one acquire and release cost against a local server,
//! next to the floors set by a bare `PING` and a bare `EVALSHA` on the same server.
//!
//! Every case runs in one group, in one run, so their ratios mean something on a noisy
//! machine. The server is a throwaway `redis-server` on loopback (`REDIS_SERVER_BIN`
//! picks another binary, e.g. `valkey-server`). Run with `cargo bench --bench semaphore`;
//! `cargo test --benches` runs each case once.
//!
//! On a small VM, wake-ups across CPUs can flip between fast and several times slower
//! within one run. `taskset -c 0 cargo bench --bench semaphore` puts the bench, its
//! runtime threads and the server (which inherits the affinity) on one CPU. That gives
//! steady numbers, but nothing overlaps on one CPU, so `acquire_drop` shows no gain from
//! pipelining there.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redis_semaphore::{AsyncSemaphore, blocking};
use tokio::runtime::Runtime;

/// Builds an async semaphore on `server`, with the library's default timeouts.
fn semaphore(
    runtime: &Runtime,
    server: &testkit::Server,
    name: &str,
    permits: u32,
) -> AsyncSemaphore {
    runtime
        .block_on(
            AsyncSemaphore::builder(name, permits)
                .master(server.url())
                .build(),
        )
        .unwrap_or_else(|e| panic!("cannot build semaphore {name}: {e}"))
}

/// Times one awaited acquire of `k` permits and its awaited release.
fn bench_acquire_release(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    id: &str,
    sem: &AsyncSemaphore,
    k: u32,
) {
    c.bench_function(id, |b| {
        b.to_async(runtime).iter(|| async move {
            let permit = sem.acquire_many(k).await.expect("acquire");
            permit.release().await.expect("release");
        });
    });
}

fn round_trip(c: &mut Criterion) {
    let server = testkit::Server::start();
    // One thread: the bench's own, which drives the connection, the renewals and the
    // background releases between its awaits; the server gets the other core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let client = server.client();
    let con = runtime
        .block_on(client.get_multiplexed_async_connection())
        .expect("connect");
    let bare = redis::Script::new("return 1");

    let acquire_release = semaphore(&runtime, &server, "bench:acquire_release", 3);
    let acquire_drop = semaphore(&runtime, &server, "bench:acquire_drop", 3);
    let many_permits = semaphore(&runtime, &server, "bench:acquire_release_10000", 10_000);
    let acquire_many = semaphore(&runtime, &server, "bench:acquire_many_4", 10);
    // Three masters: this server and two more; every request goes to all three at once.
    let others = [testkit::Server::start(), testkit::Server::start()];
    let three_masters = runtime
        .block_on(
            AsyncSemaphore::builder("bench:three_masters", 3)
                .master(server.url())
                .masters(others.iter().map(testkit::Server::url))
                .build(),
        )
        .expect("build semaphore on 3 masters");
    // Built outside the runtime: the blocking twin refuses to run inside one.
    let blocking_sem = blocking::Semaphore::builder("bench:blocking", 3)
        .master(server.url())
        .build()
        .expect("build blocking semaphore");

    let mut group = c.benchmark_group("round_trip");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("ping", |b| {
        b.to_async(&runtime).iter(|| {
            let mut con = con.clone();
            async move {
                let pong: String = redis::cmd("PING")
                    .query_async(&mut con)
                    .await
                    .expect("PING");
                black_box(pong)
            }
        });
    });

    group.bench_function("evalsha_bare", |b| {
        b.to_async(&runtime).iter(|| {
            let mut con = con.clone();
            let bare = &bare;
            async move {
                let one: i64 = bare.invoke_async(&mut con).await.expect("EVALSHA");
                black_box(one)
            }
        });
    });

    bench_acquire_release(&mut group, &runtime, "acquire_release", &acquire_release, 1);

    group.bench_function("acquire_drop", |b| {
        let sem = &acquire_drop;
        b.to_async(&runtime).iter(|| async move {
            // The release runs in the background, pipelined with the next acquire.
            drop(sem.acquire().await.expect("acquire"));
        });
    });

    bench_acquire_release(
        &mut group,
        &runtime,
        "acquire_release_10000_permits",
        &many_permits,
        1,
    );
    bench_acquire_release(
        &mut group,
        &runtime,
        "acquire_release_3_masters",
        &three_masters,
        1,
    );
    bench_acquire_release(
        &mut group,
        &runtime,
        "acquire_many_4_release",
        &acquire_many,
        4,
    );

    group.bench_function("blocking_acquire_release", |b| {
        b.iter(|| {
            let permit = blocking_sem.acquire().expect("acquire");
            permit.release().expect("release");
        });
    });

    group.finish();

    // Let the last background release land before the server goes.
    runtime.block_on(async {
        let _ = acquire_drop.value().await;
    });
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
