//! A function over a slice, on a few threads.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f(i, &items[i])` for every item, on up to `threads` scoped threads, in
/// item order. Items are taken one at a time from a shared counter rather
/// than dealt out in advance: rule files and cache entries vary a
/// hundredfold in cost (a rule listing thousands of driver hashes against a
/// one-line selection), so a fixed share would leave a thread idle.
///
/// An item is `None` when the thread that held it panicked: one bad input
/// must not lose the rest, and the caller says what the missing ones mean.
/// `what` names the work in the error logged for each such thread.
pub(crate) fn map_on_threads<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    what: &str,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<Option<R>> {
    let mut out: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.clamp(1, items.len().max(1)))
            .map(|_| {
                let (next, f) = (&next, &f);
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(i, item)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                }
                Err(_) => tracing::error!("a {what} thread panicked"),
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order_and_a_panic_loses_only_its_thread() {
        let items: Vec<u32> = (0..100).collect();
        let out = map_on_threads(&items, 3, "test", |i, x| (i as u32) * 10 + x);
        let want: Vec<Option<u32>> = (0..100).map(|x| Some(x * 11)).collect();
        assert_eq!(out, want);

        let out = map_on_threads(&items, 2, "test", |_, &x| {
            assert!(x != 7, "item 7 panics");
            x
        });
        assert_eq!(out[7], None);
        // The other thread went on to the end.
        assert!(out.iter().flatten().count() >= 50, "{out:?}");
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, r)| r.is_none_or(|x| x == i as u32)));
    }
}
