//! Where one stream is: the states `Stream` moves through, and what each holds.

pub(super) enum State<P, F, C> {
    Start,
    PassThrough,
    Buffering {
        pending: P,
        buffered: usize,
    },
    /// Paused while a callout is out.
    Calling {
        token: u32,
        call: C,
        buffered: usize,
    },
    /// A local reply was sent; nothing more goes upstream.
    Answered,
    /// The upstream answered; the answer waits for the store's settle callout.
    Settling {
        token: u32,
    },
    /// Sent upstream; holds the mode's reservation until the answer.
    Forwarded(F),
    Done,
}
