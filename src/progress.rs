//! Progress bars for people watching a terminal; nothing at all otherwise (log lines say the same).

use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncRead, ReadBuf};

/// Shared by every transfer of one command; hidden unless stderr is a terminal and not `-q`.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn for_terminal(quiet: bool) -> Self {
        let show = !quiet && std::io::stderr().is_terminal();
        Progress {
            multi: show.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    pub fn hidden() -> Self {
        Progress { multi: None }
    }

    /// A byte-counting bar (bytes, rate, ETA) for one blob.
    pub fn bar(&self, label: &str, total: u64) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        bar
    }
}

impl Progress {
    /// A one-line status (a batch's jobs done / running / failed) kept at the bottom.
    pub fn status_line(&self) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("static template"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }
}

/// Streams a file as an HTTP body, advancing a progress bar; never holds more than one chunk.
pub struct FileBodyStream {
    file: tokio::fs::File,
    bar: ProgressBar,
    buf: Vec<u8>,
}

impl FileBodyStream {
    pub fn new(file: tokio::fs::File, bar: ProgressBar) -> Self {
        bar.set_position(0);
        FileBodyStream {
            file,
            bar,
            buf: vec![0u8; 256 * 1024],
        }
    }
}

impl futures_core::Stream for FileBodyStream {
    type Item = std::io::Result<bytes::Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let mut read = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let filled = read.filled();
                if filled.is_empty() {
                    this.bar.finish_and_clear();
                    Poll::Ready(None)
                } else {
                    this.bar.inc(filled.len() as u64);
                    Poll::Ready(Some(Ok(bytes::Bytes::copy_from_slice(filled))))
                }
            }
        }
    }
}
