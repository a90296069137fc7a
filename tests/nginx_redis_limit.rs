//! ingress-nginx's `limit-rpm` shared between two real sluice instances
//! through `--rate-limit-redis` and a real `redis-server` (its own test
//! binary: the store is installed once per process, as in the server).

mod support;

use std::net::SocketAddr;

use support::nginx::*;
use support::redis_server::*;
use support::*;

async fn status(addr: SocketAddr) -> u16 {
    get(&client(), addr, "app.test", "/", &[]).await.status
}

#[tokio::test]
async fn two_instances_share_one_nginx_limit_through_redis() {
    let redis = RedisServer::start(None, None).await;
    let backend = whoami("web").await;
    let m = Manifests::new();
    let key = format!("{P}limit-rpm");
    let multiplier = format!("{P}limit-burst-multiplier");
    m.write(
        "a.yaml",
        &[
            service("web", &[backend.addr]),
            annotated_ingress(
                "limited",
                "default",
                &[(key.as_str(), "2"), (multiplier.as_str(), "1")],
                &[("app.test", "/", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    let mut one = settings(&m.path());
    one.rate_limit_redis = vec![redis.addr().to_string()];
    let mut two = settings(&m.path());
    two.rate_limit_redis = vec![redis.addr().to_string()];
    let (one, two) = (start(one).await, start(two).await);
    // 2 a minute with a burst of 2: 3 at once in all (1 + burst), not 3 each.
    let mut allowed = 0;
    for i in 0..8 {
        let addr = if i % 2 == 0 {
            one.http_addr
        } else {
            two.http_addr
        };
        match status(addr).await {
            200 => allowed += 1,
            503 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(allowed, 3, "one limit shared by both instances");
    assert!(
        redis
            .exists("sluice:nginx-limit:default/limited:0:127.0.0.1", None)
            .await
    );
}
