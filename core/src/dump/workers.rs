//! Tracer threads for a dump.
//!
//! A ptrace tracer is a thread, not a process: only the thread that seized
//! a task may stop, inject into or release it. Dumping a tree one task at
//! a time leaves the tool waiting for each task in turn (for the kernel to
//! stop it, for its parasite to answer, for it to be scheduled at all on a
//! busy machine). With several tracer threads the tasks of a tree are
//! seized, infected, drained and cured by all of them at once, each task
//! always by the thread that seized it ([`super::tree::TreeTask::owner`]).
//!
//! Jobs run in the order they are given to one worker. Every job owns
//! what it works on (tasks are moved in and handed back with the result),
//! so no job can outlive what it borrows. Dropping [`Workers`] waits for
//! every thread to finish its queue and end; a tracer thread that ends
//! lets the kernel release whatever tasks it still traced.

use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of tracer threads.
pub struct Workers {
    queues: Vec<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workers({})", self.queues.len())
    }
}

/// A job's result, to wait for.
pub struct Pending<T>(mpsc::Receiver<std::thread::Result<T>>);

impl<T> Pending<T> {
    /// The job's result. A job that panicked panics here too.
    pub fn wait(self) -> T {
        match self.0.recv() {
            Ok(Ok(v)) => v,
            Ok(Err(p)) => std::panic::resume_unwind(p),
            // The worker is gone without answering: it panicked outside
            // a job, which cannot happen; report it as a panic here.
            Err(_) => panic!("a dump worker thread ended without finishing its job"),
        }
    }
}

impl Workers {
    /// `n` threads (at least one). A thread that cannot be started leaves
    /// fewer; none at all is an error.
    pub fn spawn(n: usize) -> std::io::Result<Workers> {
        let mut w = Workers {
            queues: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::channel::<Job>();
            let t = std::thread::Builder::new()
                .name(format!("dump-{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                });
            match t {
                Ok(t) => {
                    w.queues.push(tx);
                    w.threads.push(t);
                }
                Err(e) if w.threads.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(w)
    }

    pub fn len(&self) -> usize {
        self.queues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Runs `f` on worker `w` (modulo the count) after its earlier jobs.
    pub fn submit<T: Send + 'static>(
        &self,
        w: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Pending<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        });
        // A worker only stops when its queue is closed (on drop), so the
        // send cannot fail while `self` lives.
        let _ = self.queues[w % self.queues.len()].send(job);
        Pending(rx)
    }

    /// Runs `f` on worker `w` and waits for it.
    pub fn run<T: Send + 'static>(&self, w: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.submit(w, f).wait()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.queues.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_their_worker_in_order() {
        let w = Workers::spawn(3).unwrap();
        let ids: Vec<_> = (0..9)
            .map(|i| {
                w.submit(i, move || {
                    (i, std::thread::current().name().map(String::from))
                })
            })
            .collect();
        for (i, p) in ids.into_iter().enumerate() {
            let (j, name) = p.wait();
            assert_eq!(j, i);
            assert_eq!(name.as_deref(), Some(format!("dump-{}", i % 3).as_str()));
        }
        assert_eq!(w.run(1, || 42), 42);
    }
}
