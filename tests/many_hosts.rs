//! Many hosts: agents (`modelmon-tui agent`) read a Docker engine and publish its
//! containers to the real broker; a monitor with no Docker of its own (`--no-docker`)
//! shows them. Two agents with two configs on this one engine stand for two hosts.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent::{Agent, config};
use crate::docker::{Container, cgroup_cpu_ns, docker};
use crate::support::{AMQP, Monitor, model, unique};

const MIB: f64 = 1024.0 * 1024.0;

/// An agent calling itself `host`, with `docker_config` as its whole config file.
fn agent(host: &str, docker_config: &str) -> Agent {
    let path = config(docker_config);
    Agent::start(&[
        "--host",
        host,
        "--amqp",
        AMQP,
        "--config",
        path.to_str().expect("utf-8 path"),
    ])
}

/// An agent that maps containers labelled with `key`, sampled every second. Each test
/// has its own key: agents of parallel tests read the same engine, and one container
/// reported by two agents would count twice (as two hosts never would).
fn label_config(key: &str) -> String {
    format!("[docker]\nlabel_key = \"{key}\"\ninterval = \"1s\"\n")
}

/// A container labelled `key=model`.
fn labelled(key: &str, model: &str, extra: &[&str], cmd: &[&str]) -> Container {
    Container::run_labelled(None, &unique("mm-host"), key, model, extra, cmd)
}

/// A config that maps only the container `name` to `model` (the label key matches none).
fn mapping_config(name: &str, model: &str) -> String {
    format!(
        "[docker]\nlabel_key = \"{}\"\ninterval = \"1s\"\n\n[[models]]\nname = \"{model}\"\ncontainer = \"{name}\"\n",
        unique("no-such-label")
    )
}

/// A monitor that reads no Docker engine itself: every container comes from agents.
fn monitor() -> Monitor {
    Monitor::start(&["--no-docker"])
}

/// Memory `docker stats` shows for `name`, in MiB.
fn docker_stats_mem_mib(name: &str) -> f64 {
    let out = docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", name]);
    let used = out.split('/').next().unwrap_or("").trim();
    let (num, unit) = used.split_at(used.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0));
    let n: f64 = num
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("docker stats: {out}"));
    match unit {
        "B" => n / MIB,
        "KiB" | "kB" => n / 1024.0,
        "MiB" | "MB" => n,
        "GiB" | "GB" => n * 1024.0,
        _ => panic!("docker stats unit {unit:?}: {out}"),
    }
}

fn replica<'a>(line: &'a Value, m: &str, name: &str) -> Option<&'a Value> {
    model(line, m)?["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
}

#[test]
fn an_agents_busy_container_shows_its_cpu_and_memory_then_unknown_when_it_stops() {
    require!(Rabbitmq, Docker);
    let key = unique("mm-test-label");
    let m = unique("remote");
    let host = unique("host-a");
    // A busy loop, and 64 MiB held in a tmpfs file (resident, charged to the container).
    let c = labelled(
        &key,
        &m,
        &["--shm-size", "128m"],
        &[
            "sh",
            "-c",
            "head -c 67108864 /dev/zero > /dev/shm/fill; while :; do :; done",
        ],
    );
    let mon = monitor();
    mon.wait_connected();
    let started = Instant::now();
    let running = agent(&host, &label_config(&key));
    let line = mon.wait_for("the container's figures", Duration::from_secs(60), |v| {
        replica(v, &m, &c.name).is_some_and(|r| r["cpu_percent"].is_number())
    });
    println!(
        "agent started → figure in the monitor: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        line["docker"]["state"], "disabled",
        "the monitor reads no Docker"
    );
    let r = replica(&line, &m, &c.name).expect("the replica");
    assert_eq!(r["host"], host.as_str(), "{r}");
    assert_eq!(r["state"], "running");

    // Its CPU over several samples against what its cgroup says it got over the same
    // seconds: a whole core on a quiet machine, less on a loaded one.
    let mut cpu = Vec::new();
    let mut seen_at = 0;
    let mut window = None;
    let mut last = line;
    while cpu.len() < 6 {
        last = mon.wait_for("a new sample", Duration::from_secs(30), |v| {
            replica(v, &m, &c.name).is_some_and(|r| r["sampled_at_ms"].as_i64() > Some(seen_at))
        });
        let now = (Instant::now(), cgroup_cpu_ns(&c.id));
        let first = *window.get_or_insert((now, now));
        window = Some((first.0, now));
        let r = replica(&last, &m, &c.name).expect("replica");
        seen_at = r["sampled_at_ms"].as_i64().expect("sampled");
        cpu.push(
            model(&last, &m)
                .and_then(|r| r["cpu_percent"].as_f64())
                .expect("cpu"),
        );
    }
    let mean = cpu[1..].iter().sum::<f64>() / (cpu.len() - 1) as f64;
    if let Some(((t0, Some(c0)), (t1, Some(c1)))) = window {
        let truth = (c1 - c0) as f64 / 1e9 / (t1 - t0).as_secs_f64() * 100.0;
        println!("cpu through the agent: {mean:.1} % on average, the cgroup {truth:.1} %");
        assert!(
            (mean - truth).abs() <= 15.0,
            "monitor {mean:.1} % ({cpu:?}), cgroup {truth:.1} %"
        );
    }
    assert!(
        mean >= 5.0 && cpu.iter().all(|c| *c <= 115.0),
        "busy, and one thread is at most one core: {cpu:?}"
    );
    let r = replica(&last, &m, &c.name).expect("replica");
    let mem = r["mem_bytes"].as_f64().expect("memory") / MIB;
    let expected = docker_stats_mem_mib(&c.name);
    println!("memory: monitor {mem:.1} MiB, docker stats {expected:.1} MiB");
    assert!(
        (mem - expected).abs() <= expected * 0.1,
        "monitor {mem:.1} MiB, docker stats {expected:.1} MiB"
    );
    let agents = last["agents"].as_array().expect("agents listed");
    let a = agents
        .iter()
        .find(|a| a["host"] == host.as_str())
        .expect("our agent");
    assert_eq!(a["state"], "live");
    // An agent sends every running container of its host, mapped or not (the monitor maps
    // the rest by instance), so other tests' containers may be counted beside ours.
    assert!(a["containers"].as_u64() >= Some(1), "{a}");

    // The agent is killed: its figures become unknown (not zero) and the host is named.
    drop(running);
    let stopped = Instant::now();
    let line = mon.wait_for(
        "the figures to turn unknown",
        Duration::from_secs(30),
        |v| model(v, &m).is_some_and(|r| r["cpu_percent"].is_null()),
    );
    println!(
        "agent stopped → unknown after {:.1} s",
        stopped.elapsed().as_secs_f64()
    );
    let row = model(&line, &m).expect("the model still has its row");
    assert!(row["mem_bytes"].is_null(), "{row}");
    assert_eq!(row["silent_hosts"], serde_json::json!([host]), "{row}");
    let a = line["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["host"] == host.as_str()))
        .expect("the agent is still listed");
    assert_eq!(a["state"], "silent");
}

#[test]
fn two_agents_for_one_models_two_containers_sum() {
    require!(Rabbitmq, Docker);
    let m = unique("two-hosts");
    // Labelled for no one: each agent maps its own container by name, from its config.
    let nobody = unique("mm-test-label");
    let busy = labelled(&nobody, "x", &[], &["sh", "-c", "while :; do :; done"]);
    let holder = labelled(
        &nobody,
        "x",
        &["--shm-size", "64m"],
        &[
            "sh",
            "-c",
            "head -c 33554432 /dev/zero > /dev/shm/fill; sleep 3600",
        ],
    );
    let mon = monitor();
    mon.wait_connected();
    let (host_a, host_b) = (unique("host-a"), unique("host-b"));
    let _a = agent(&host_a, &mapping_config(&busy.name, &m));
    let _b = agent(&host_b, &mapping_config(&holder.name, &m));
    let line = mon.wait_for("both replicas with figures", Duration::from_secs(60), |v| {
        [&busy.name, &holder.name].iter().all(|n| {
            // A container's first sample has no CPU yet: it is a rate between two.
            replica(v, &m, n).is_some_and(|r| r["mem_bytes"].is_u64() && r["cpu_percent"].is_f64())
        })
    });
    let row = model(&line, &m).expect("model row");
    let (ra, rb) = (
        replica(&line, &m, &busy.name).expect("busy replica"),
        replica(&line, &m, &holder.name).expect("holder replica"),
    );
    assert_eq!(
        (&ra["host"], &rb["host"]),
        (&Value::from(host_a.as_str()), &Value::from(host_b.as_str()))
    );
    let sum_mem = ra["mem_bytes"].as_u64().unwrap_or(0) + rb["mem_bytes"].as_u64().unwrap_or(0);
    assert_eq!(row["mem_bytes"].as_u64(), Some(sum_mem), "{row}");
    let sum_cpu =
        ra["cpu_percent"].as_f64().unwrap_or(0.0) + rb["cpu_percent"].as_f64().unwrap_or(0.0);
    let cpu = row["cpu_percent"].as_f64().expect("summed cpu");
    assert!(
        (cpu - sum_cpu).abs() < 0.01,
        "model {cpu}, replicas {sum_cpu}"
    );
    let holder_mib = rb["mem_bytes"].as_f64().unwrap_or(0.0) / MIB;
    assert!(
        (holder_mib - 32.0).abs() <= 3.2,
        "holder shows {holder_mib:.1} MiB"
    );
    // Each agent sent its whole engine, but only its own mapping counts: nothing twice.
    assert_eq!(row["containers"].as_array().map(Vec::len), Some(2), "{row}");
}

#[test]
fn a_containers_change_reaches_the_monitor_within_seconds() {
    require!(Rabbitmq, Docker);
    let key = unique("mm-test-label");
    let m = unique("stress");
    let c = labelled(&key, &m, &[], &["sleep", "3600"]);
    let mon = monitor();
    mon.wait_connected();
    let _agent = agent(&unique("host"), &label_config(&key));
    mon.wait_for("the idle container", Duration::from_secs(60), |v| {
        model(v, &m)
            .and_then(|r| r["cpu_percent"].as_f64())
            .is_some_and(|c| c < 20.0)
    });
    // The stress starts now; the monitor's figure follows it.
    docker(&["exec", "-d", &c.name, "sh", "-c", "while :; do :; done"]);
    let t = Instant::now();
    mon.wait_for("the stress to show", Duration::from_secs(30), |v| {
        model(v, &m)
            .and_then(|r| r["cpu_percent"].as_f64())
            .is_some_and(|c| c > 20.0)
    });
    println!(
        "stress start → monitor figure: {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn an_agents_container_mapped_by_instance_that_exits_shows_exited_with_its_exit() {
    require!(Rabbitmq, Docker);
    let m = unique("exits");
    // Labelled for no one: the agent sends it without a model, the monitor maps it by
    // the instance of the model's events. It exits with code 3 when told to.
    let c = labelled(
        &unique("mm-test-label"),
        "x",
        &[],
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/stop ]; do sleep 0.2; done; exit 3",
        ],
    );
    let hostname = docker(&["inspect", "-f", "{{.Config.Hostname}}", &c.name]);
    let mon = monitor();
    mon.wait_connected();
    let host = unique("host-a");
    let _agent = agent(&host, &label_config(&unique("mm-test-label")));
    let mut ev = crate::support::event(&m, 200, 5_000);
    ev["instance"] = hostname.into();
    crate::support::runtime().block_on(async {
        let p = crate::support::Publisher::connect().await;
        p.publish(&m, &crate::support::batch(vec![ev], 0)).await;
    });
    // Other tests' agents read this engine too: ours is the replica our agent reports.
    let ours = |v: &Value| -> Option<Value> {
        model(v, &m)?["containers"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == c.name.as_str() && r["host"] == host.as_str())
            .cloned()
    };
    mon.wait_for("the running replica", Duration::from_secs(60), |v| {
        ours(v).is_some_and(|r| r["state"] == "running")
    });
    docker(&["exec", &c.name, "sh", "-c", ": > /tmp/stop"]);
    let exit_told = |v: &Value| {
        model(v, &m)
            .and_then(|r| r["container_events"].as_array())
            .is_some_and(|evs| {
                evs.iter().any(|e| {
                    e["container"] == c.name.as_str()
                        && e["action"] == "die"
                        && e["detail"].as_str().is_some_and(|d| d.contains('3'))
                })
            })
    };
    let line = mon.wait_for(
        "the replica exited, and its exit on the timeline",
        Duration::from_secs(30),
        |v| ours(v).is_some_and(|r| r["state"] == "exited") && exit_told(v),
    );
    let r = ours(&line).expect("our replica");
    assert!(
        r["cpu_percent"].is_null(),
        "a stopped container has no figures: {r}"
    );
}
