//! The bounded, laned thread pool: waves, a full queue, panics, lanes that
//! keep slow file work from starving crypto, and every job kind for real.

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use phaseloop_core::{crypto, dns, fs, zlib, Job, Lane, Loop, Pool, PoolError};

fn loop_with(pool: Pool) -> Loop {
    Loop::builder()
        .pool(pool)
        .delay_resolution(None)
        .block_warnings(false)
        .build()
        .unwrap()
}

/// Runs `jobs` equal pbkdf2 jobs on a pool of `threads` and returns how many
/// ran at once at most, and how many started before the first one finished.
/// Each job holds at a gate until `threads` jobs are running (or 10 s pass),
/// so the figures are the pool's concurrency, not a race between a job's
/// length and a sleeping thread's wake-up on a busy machine (how fast the
/// threads wake is a benchmark's question: `loop-micro`).
fn pbkdf2_waves(threads: usize, jobs: usize) -> (usize, usize) {
    let lp = loop_with(Pool::new(threads));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let started_before_first_finish = Arc::new(AtomicUsize::new(0));
    let full = Gate::default();
    let done = Rc::new(RefCell::new(0));
    lp.run_main(|lp| {
        for _ in 0..jobs {
            let (running, peak, finished, early, full) = (
                running.clone(),
                peak.clone(),
                finished.clone(),
                started_before_first_finish.clone(),
                full.clone(),
            );
            let done = done.clone();
            Job::new(Lane::Crypto, move || {
                if finished.load(Ordering::SeqCst) == 0 {
                    early.fetch_add(1, Ordering::SeqCst);
                }
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                if now == threads {
                    full.open();
                }
                full.wait();
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"password", b"salt", 2_000, &mut out);
                running.fetch_sub(1, Ordering::SeqCst);
                finished.fetch_add(1, Ordering::SeqCst);
                out
            })
            .submit(lp, move |_, r| {
                assert!(r.is_ok());
                *done.borrow_mut() += 1;
            })
            .unwrap();
        }
    });
    assert_eq!(*done.borrow(), jobs);
    (
        peak.load(Ordering::SeqCst),
        started_before_first_finish.load(Ordering::SeqCst),
    )
}

#[test]
fn four_threads_run_eight_jobs_in_two_waves_eight_in_one() {
    let (peak, first_wave) = pbkdf2_waves(4, 8);
    assert_eq!(peak, 4, "never more than 4 at once on 4 threads");
    assert_eq!(first_wave, 4, "the first wave is 4 jobs; the other 4 wait");

    let (peak, first_wave) = pbkdf2_waves(8, 8);
    assert_eq!(peak, 8, "8 threads run all 8 at once");
    assert_eq!(first_wave, 8, "one wave");
}

/// A gate the test opens: jobs block on it so queue states are exact.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (lock, cv) = &*self.0;
        let guard = lock.lock().unwrap();
        let (_g, timeout) = cv
            .wait_timeout_while(guard, Duration::from_secs(10), |open| !*open)
            .unwrap();
        assert!(!timeout.timed_out(), "gate never opened");
    }
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
    fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }
}

#[test]
fn full_queue_is_an_error_at_submit() {
    let pool = Pool::builder().threads(1).queue_capacity(2).build();
    let lp = loop_with(pool);
    let gate = Gate::default();
    let results = Rc::new(RefCell::new(Vec::new()));
    lp.run_main(|lp| {
        // One running (holding the only thread), two queued: the queue is full.
        for i in 0..3 {
            let g = gate.clone();
            let r = results.clone();
            Job::new(Lane::Cpu, move || {
                if i == 0 {
                    g.wait();
                }
                i
            })
            .submit(lp, move |_, v| r.borrow_mut().push(v.unwrap()))
            .unwrap();
            if i == 0 {
                // Let the thread take job 0 off the queue.
                while lp.pool().stats().lane(Lane::Cpu).running == 0 {
                    std::thread::yield_now();
                }
            }
        }
        let refused = Job::new(Lane::Cpu, || 99).submit(lp, |_, _| panic!("refused job ran"));
        assert_eq!(refused, Err(PoolError::QueueFull));
        assert_eq!(lp.pool().stats().rejected, 1);
        gate.open();
    });
    assert_eq!(*results.borrow(), [0, 1, 2]);
}

#[test]
fn panicking_job_returns_error_and_pool_keeps_working() {
    let lp = loop_with(Pool::new(1));
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.run_main(move |lp| {
        let l1 = l.clone();
        Job::new(Lane::Cpu, || -> u32 { panic!("boom in a job") })
            .submit(lp, move |_, r| l1.borrow_mut().push(format!("{r:?}")))
            .unwrap();
        let l2 = l.clone();
        Job::new(Lane::Cpu, || 7u32)
            .submit(lp, move |_, r| l2.borrow_mut().push(format!("{r:?}")))
            .unwrap();
    });
    assert_eq!(*log.borrow(), ["Err(Panicked(\"boom in a job\"))", "Ok(7)"]);
    let stats = lp.pool_stats().unwrap();
    assert_eq!(stats.lane(Lane::Cpu).panicked, 1);
    assert_eq!(stats.lane(Lane::Cpu).completed, 2);
}

/// Slow file jobs flood the pool; a crypto job still runs while they are
/// stuck, because the Fs lane may use only half the threads. The file jobs
/// are released only by the crypto job's callback: without lanes, every
/// thread would hold a stuck file job and this test would fail its gate.
#[test]
fn slow_fs_flood_does_not_starve_crypto() {
    let lp = loop_with(Pool::new(4));
    let gate = Gate::default();
    let fs_done = Rc::new(RefCell::new(0));
    let crypto_saw_fs_done = Rc::new(RefCell::new(None));
    lp.run_main(|lp| {
        for _ in 0..20 {
            let g = gate.clone();
            let d = fs_done.clone();
            Job::new(Lane::Fs, move || g.wait())
                .submit(lp, move |_, r| {
                    r.unwrap();
                    *d.borrow_mut() += 1;
                })
                .unwrap();
        }
        let g = gate.clone();
        let d = fs_done.clone();
        let saw = crypto_saw_fs_done.clone();
        crypto::pbkdf2_sha512("pw", "salt", 1000, 64)
            .submit(lp, move |_, r| {
                assert_eq!(r.unwrap().len(), 64);
                *saw.borrow_mut() = Some(*d.borrow());
                g.open();
            })
            .unwrap();
    });
    assert_eq!(
        *crypto_saw_fs_done.borrow(),
        Some(0),
        "crypto ran during the flood"
    );
    assert_eq!(*fs_done.borrow(), 20);
    let stats = lp.pool_stats().unwrap();
    assert_eq!(stats.lane(Lane::Fs).cap, 2);
    assert!(stats.lane(Lane::Crypto).wait_at(1.0) < Duration::from_secs(1));
    assert!(stats.lane(Lane::Fs).wait_at(1.0) > Duration::ZERO);
}

/// The other way round: a crypto flood holds every thread and has a
/// backlog; a file job queued behind it takes the first thread a crypto job
/// frees, before the older crypto jobs (a lane under its share goes first),
/// and while it waits or runs crypto cannot take that thread back. Without
/// shares the freed thread would take the oldest job, a hash, and the file
/// job would wait for the whole backlog.
#[test]
fn crypto_flood_does_not_starve_fs() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let lp = loop_with(Pool::new(4));
    let gates: Vec<Gate> = (0..8).map(|_| Gate::default()).collect();
    let started = Arc::new(AtomicUsize::new(0));
    let fs_ran_while_gated = Rc::new(RefCell::new(None));
    lp.run_main(|lp| {
        for (i, gate) in gates.iter().enumerate() {
            let (gate, started, order) = (gate.clone(), started.clone(), order.clone());
            Job::new(Lane::Crypto, move || {
                order.lock().unwrap().push(format!("crypto {i}"));
                started.fetch_add(1, Ordering::SeqCst);
                gate.wait();
            })
            .submit(lp, |_, r| r.unwrap())
            .unwrap();
        }
        // Once four hashes hold the four threads (four more queued), a
        // file job arrives, then one hash finishes.
        let (started, order, gates) = (started.clone(), order.clone(), gates.clone());
        let saw = fs_ran_while_gated.clone();
        lp.set_immediate(move |lp| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while started.load(Ordering::SeqCst) < 4 {
                assert!(Instant::now() < deadline, "four hashes never ran");
                std::thread::sleep(Duration::from_millis(1));
            }
            let o = order.clone();
            let g = gates.clone();
            Job::new(Lane::Fs, move || o.lock().unwrap().push("fs".to_string()))
                .submit(lp, move |_, r| {
                    r.unwrap();
                    // The hashes still gated: the file job did not wait
                    // for the backlog.
                    *saw.borrow_mut() = Some(g[4..].iter().all(|g| !g.is_open()));
                    for g in &g {
                        g.open();
                    }
                })
                .unwrap();
            gates[0].open();
        });
    });
    assert_eq!(*fs_ran_while_gated.borrow(), Some(true));
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order[4], "fs",
        "the thread the first hash freed went to the file job: {order:?}"
    );
    assert_eq!(order.len(), 9);
}

#[test]
fn fs_jobs_write_append_read_stat_and_list() {
    let dir = std::env::temp_dir().join(format!("phaseloop-fs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lp = loop_with(Pool::new(2));
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    let d = dir.clone();
    lp.run_main(move |lp| {
        let file = d.join("log.txt");
        let (ow, d2, f2) = (o.clone(), d.clone(), file.clone());
        fs::write_file(&file, "one\n")
            .submit(lp, move |lp, r| {
                r.unwrap().unwrap();
                let (o, d3, f3) = (ow.clone(), d2.clone(), f2.clone());
                fs::append_durable(&f2, "two\n")
                    .submit(lp, move |lp, r| {
                        r.unwrap().unwrap();
                        let (o1, o2, o3) = (o.clone(), o.clone(), o.clone());
                        fs::read_file(&f3)
                            .submit(lp, move |_, r| {
                                o1.borrow_mut()
                                    .push(String::from_utf8(r.unwrap().unwrap()).unwrap())
                            })
                            .unwrap();
                        fs::stat(&f3)
                            .submit(lp, move |_, r| {
                                let st = r.unwrap().unwrap();
                                o2.borrow_mut()
                                    .push(format!("len={} file={}", st.len, st.is_file));
                            })
                            .unwrap();
                        fs::read_dir(&d3)
                            .submit(lp, move |_, r| {
                                o3.borrow_mut().push(r.unwrap().unwrap().join(","))
                            })
                            .unwrap();
                    })
                    .unwrap();
            })
            .unwrap();
        let o4 = o.clone();
        fs::read_file(d.join("missing"))
            .submit(lp, move |_, r| {
                o4.borrow_mut()
                    .push(format!("missing: {:?}", r.unwrap().unwrap_err().kind()))
            })
            .unwrap();
    });
    let mut got = out.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "len=8 file=true",
            "log.txt",
            "missing: NotFound",
            "one\ntwo\n"
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn crypto_dns_and_gzip_jobs() {
    let lp = loop_with(Pool::new(2));
    let out = Rc::new(RefCell::new(Vec::new()));
    let o = out.clone();
    lp.run_main(move |lp| {
        let o1 = o.clone();
        // RFC 6070-style vector for PBKDF2-HMAC-SHA512 (1 iteration, 64 bytes).
        crypto::pbkdf2_sha512("password", "salt", 1, 64)
            .submit(lp, move |_, r| {
                let key = r.unwrap();
                let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                o1.borrow_mut().push(hex[..32].to_string());
            })
            .unwrap();
        let o2 = o.clone();
        crypto::random_bytes(32)
            .submit(lp, move |_, r| {
                let bytes = r.unwrap().unwrap();
                o2.borrow_mut().push(format!(
                    "random {} nonzero={}",
                    bytes.len(),
                    bytes.iter().any(|b| *b != 0)
                ));
            })
            .unwrap();
        let o3 = o.clone();
        dns::lookup("127.0.0.1", 8080)
            .submit(lp, move |_, r| {
                let addrs = r.unwrap().unwrap();
                o3.borrow_mut().push(format!("dns {}", addrs[0]));
            })
            .unwrap();
        let o4 = o.clone();
        let text = "hello hello hello hello hello hello ".repeat(100);
        let original = text.clone();
        zlib::gzip(text, 6)
            .submit(lp, move |lp, r| {
                let gz = r.unwrap().unwrap();
                assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
                assert!(gz.len() < original.len() / 10);
                let o4 = o4.clone();
                zlib::gunzip(gz.clone(), 1 << 20)
                    .submit(lp, move |_, r| {
                        assert_eq!(r.unwrap().unwrap(), original.as_bytes());
                        o4.borrow_mut().push("gunzip roundtrip".to_string());
                    })
                    .unwrap();
                zlib::gunzip(gz, 100)
                    .submit(lp, |_, r| {
                        assert_eq!(
                            r.unwrap().unwrap_err().kind(),
                            std::io::ErrorKind::InvalidData
                        )
                    })
                    .unwrap();
            })
            .unwrap();
    });
    let mut got = out.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "867f70cf1ade02cff3752599a3a53dc4",
            "dns 127.0.0.1:8080",
            "gunzip roundtrip",
            "random 32 nonzero=true"
        ]
    );
}

#[test]
fn global_pool_size_comes_from_env() {
    // Runs in its own process under nextest; under `cargo test` the global
    // pool may already exist, so only check the builder's parsing here.
    std::env::set_var(phaseloop_core::pool::THREADS_ENV, "6");
    let pool = phaseloop_core::PoolBuilder::from_env().build();
    assert_eq!(pool.threads(), 6);
    std::env::set_var(phaseloop_core::pool::THREADS_ENV, "not a number");
    assert_eq!(phaseloop_core::PoolBuilder::from_env().build().threads(), 4);
    std::env::remove_var(phaseloop_core::pool::THREADS_ENV);
    let start = Instant::now();
    drop(pool);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "dropping the pool joins idle threads promptly"
    );
}

/// `Job::run` never drops its callback: a refused job is answered with
/// QueueFull in the check phase of the same tick, not from inside `run`.
#[test]
fn run_answers_a_refused_job_through_its_callback() {
    let pool = Pool::builder().threads(1).queue_capacity(1).build();
    let lp = loop_with(pool);
    let gate = Gate::default();
    let log = Rc::new(RefCell::new(Vec::new()));
    lp.run_main(|lp| {
        let g = gate.clone();
        Job::new(Lane::Cpu, move || g.wait()).run(lp, |_, r| assert!(r.is_ok()));
        while lp.pool().stats().lane(Lane::Cpu).running == 0 {
            std::thread::yield_now();
        }
        let l = log.clone();
        Job::new(Lane::Cpu, || 1).run(lp, move |_, r| l.borrow_mut().push(format!("queued {r:?}")));
        let l = log.clone();
        Job::new(Lane::Cpu, || 2).run(lp, move |lp, r| {
            assert_eq!(lp.phase(), phaseloop_core::Phase::Check);
            l.borrow_mut().push(format!("refused {r:?}"));
        });
        log.borrow_mut().push("after run".to_string());
        let g = gate.clone();
        lp.set_timeout(Duration::from_millis(20), move |_| g.open());
    });
    assert_eq!(
        *log.borrow(),
        ["after run", "refused Err(QueueFull)", "queued Ok(1)"]
    );
}
