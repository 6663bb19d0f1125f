//! Worker threads: their own loop, messages both ways, errors reported to
//! the parent like Node's 'error' event, and the parent kept alive meanwhile.

mod util;

use std::rc::Rc;
use std::time::Duration;

use phaseloop_core::{Worker, WorkerEvent};
use util::{quiet_loop, Log};

#[test]
fn worker_computes_off_the_loop_and_messages_back() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l = l.clone();
        let worker = Worker::<u64>::spawn(
            lp,
            |wlp, port| {
                let port = Rc::new(port);
                let reply = port.clone();
                // Listen only after a timer: messages that came earlier wait.
                wlp.set_timeout(Duration::from_millis(5), move |wlp| {
                    port.on_message(wlp, move |wlp, limit: u64| {
                        let primes = (2..limit)
                            .filter(|n| (2..*n).take_while(|d| d * d <= *n).all(|d| n % d != 0))
                            .count() as u64;
                        reply.post(primes).unwrap();
                        if limit >= 1000 {
                            reply.close(wlp);
                        }
                    });
                });
            },
            move |_, event: WorkerEvent<u64>| match event {
                WorkerEvent::Message(n) => l.push(format!("message {n}")),
                WorkerEvent::Error(e) => l.push(format!("error {e}")),
                WorkerEvent::Exit => l.push("exit"),
            },
        )
        .unwrap();
        worker.post(100).unwrap();
        worker.post(1000).unwrap();
    });
    // 25 primes below 100, 168 below 1000.
    assert_eq!(log.take(), ["message 25", "message 168", "exit"]);
}

#[test]
fn panicking_worker_reports_error_then_exit() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l = l.clone();
        Worker::<()>::spawn(
            lp,
            |wlp, _port: phaseloop_core::ParentPort<(), ()>| {
                wlp.set_immediate(|_| panic!("worker blew up"));
            },
            move |_, event| match event {
                WorkerEvent::Message(()) => l.push("message"),
                WorkerEvent::Error(e) => l.push(format!("error: {e}")),
                WorkerEvent::Exit => l.push("exit"),
            },
        )
        .unwrap();
    });
    assert_eq!(log.take(), ["error: worker blew up", "exit"]);
}

#[test]
fn terminate_stops_a_listening_worker() {
    let lp = quiet_loop();
    let log = Log::new();
    let l = log.clone();
    lp.run_main(move |lp| {
        let l = l.clone();
        let worker = Worker::<u32>::spawn(
            lp,
            |wlp, port: phaseloop_core::ParentPort<u32, u32>| {
                // Listens forever: only terminate() ends it.
                port.on_message(wlp, |_, _| {});
                port.post(1).unwrap();
            },
            move |_, event| match event {
                WorkerEvent::Message(n) => l.push(format!("message {n}")),
                WorkerEvent::Error(e) => l.push(format!("error {e}")),
                WorkerEvent::Exit => l.push("exit"),
            },
        )
        .unwrap();
        lp.set_timeout(Duration::from_millis(20), move |_| worker.terminate());
    });
    assert_eq!(log.take(), ["message 1", "exit"]);
}
