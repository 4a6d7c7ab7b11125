//! Fault injection: one-shot [`Fault`]s queued by tests, and [`Gate`]s that hold downloads, so
//! error paths and overlap can be driven deterministically without sleeping.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::download::s3_error_xml;
use super::functions::access_denied_message as function_access_denied_message;
use super::lambda::access_denied_message;

/// A one-shot fault. Faults wait in a FIFO queue; each incoming request removes and applies the
/// first queued fault that matches its kind (see each variant), so faults of different kinds
/// interleave independently while faults of one kind are used in the order they were injected.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers the next Lambda API call (any operation, layer or function) with this status and
    /// error type, e.g. 500 ServiceException, 429 TooManyRequestsException, 403 AccessDeniedException.
    LambdaStatus {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Answers the next Lambda layer call with this status and a body that is not an AWS error
    /// (what a proxy or load balancer in front of the service sends), as text/html.
    LambdaRaw { status: u16, body: String },
    /// Answers the next ECR call (any operation) with this status and `__type`.
    EcrStatus {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Answers the next download with this status and body (XML, like S3).
    DownloadStatus { status: u16, body: String },
    /// The next download sends headers with the full Content-Length, `after_bytes` of body, then
    /// closes the connection.
    DownloadReset { after_bytes: usize },
    /// The next successful GetLayerVersionByArn / GetLayerVersion reports a wrong CodeSha256.
    WrongCodeSha256,
    /// The next successful GetLayerVersionByArn / GetLayerVersion reports CodeSize + 1.
    WrongCodeSize,
    /// The next successful GetLayerVersionByArn / GetLayerVersion gives a Location on this base
    /// URL instead of the fake's own (e.g. a host that does not resolve).
    LocationBase { base: String },
    /// Answers the next call of one Lambda function operation (`operation` as in the API reference:
    /// "GetFunction", "CreateFunction", "GetFunctionConfiguration", ...) with this status and type.
    LambdaOperation {
        operation: String,
        status: u16,
        error_type: String,
        message: String,
    },
    /// The next successful GetFunction of a zip function reports a wrong CodeSha256.
    WrongFunctionCodeSha256,
    /// The next successful GetFunction of a zip function reports CodeSize + 1.
    WrongFunctionCodeSize,
    /// The next CreateFunction is accepted (201, Pending) but the function then goes to
    /// `State: Failed` with this StateReasonCode and StateReason, e.g. "InvalidImage".
    FunctionCreateFails { reason_code: String, reason: String },
    /// The next UpdateFunctionCode is accepted (InProgress) but ends `LastUpdateStatus: Failed`
    /// with this LastUpdateStatusReasonCode and reason.
    FunctionUpdateFails { reason_code: String, reason: String },
    /// Answers the next S3 API call (PutObject) with this status and S3 error code,
    /// e.g. 403 AccessDenied.
    S3Status {
        status: u16,
        code: String,
        message: String,
    },
}

impl Fault {
    /// What S3 answers when a presigned URL is used after `X-Amz-Expires`.
    pub fn expired_download() -> Fault {
        Fault::DownloadStatus {
            status: 403,
            body: s3_error_xml("AccessDenied", "Request has expired"),
        }
    }

    /// What Lambda answers when the caller lacks `lambda:GetLayerVersion` on a layer.
    pub fn lambda_access_denied(arn: &str) -> Fault {
        Fault::LambdaStatus {
            status: 403,
            error_type: "AccessDeniedException".into(),
            message: access_denied_message(arn),
        }
    }

    /// What Lambda answers when the caller's identity lacks `lambda:<operation>` on `resource`
    /// (a function ARN, qualified when the call was): the message names the IAM action.
    pub fn function_access_denied(operation: &str, resource: &str) -> Fault {
        Fault::LambdaOperation {
            operation: operation.into(),
            status: 403,
            error_type: "AccessDeniedException".into(),
            message: function_access_denied_message(operation, resource),
        }
    }

    /// 429 TooManyRequestsException (Reason CallerRateLimitExceeded) for the next `operation`.
    pub fn lambda_throttled(operation: &str) -> Fault {
        Fault::LambdaOperation {
            operation: operation.into(),
            status: 429,
            error_type: "TooManyRequestsException".into(),
            message: "Rate exceeded".into(),
        }
    }

    /// 500 ServiceException for the next `operation`.
    pub fn lambda_service_error(operation: &str) -> Fault {
        Fault::LambdaOperation {
            operation: operation.into(),
            status: 500,
            error_type: "ServiceException".into(),
            message: "An internal error occurred (fake AWS)".into(),
        }
    }

    pub(super) fn is_lambda_operation(&self, name: &str) -> bool {
        matches!(self, Fault::LambdaOperation { operation, .. } if operation == name)
    }
    pub(super) fn is_function_content(&self) -> bool {
        matches!(
            self,
            Fault::WrongFunctionCodeSha256 | Fault::WrongFunctionCodeSize
        )
    }
    pub(super) fn is_lambda_status(&self) -> bool {
        matches!(self, Fault::LambdaStatus { .. } | Fault::LambdaRaw { .. })
    }
    pub(super) fn is_content(&self) -> bool {
        matches!(
            self,
            Fault::WrongCodeSha256 | Fault::WrongCodeSize | Fault::LocationBase { .. }
        )
    }
    pub(super) fn is_download(&self) -> bool {
        matches!(
            self,
            Fault::DownloadStatus { .. } | Fault::DownloadReset { .. }
        )
    }
}

/// A latch a test opens to release downloads held with [`FakeAws::hold_download`]; exists so tests
/// can prove other work overlaps a download by ordering events, without sleeping.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<GateState>, Condvar)>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum GateState {
    #[default]
    Closed,
    Open,
    /// A held download waited its whole timeout (or the fake stopped) before the gate opened.
    Expired,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, GateState> {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Releases the downloads waiting on this gate (and any later ones); too late once expired.
    pub fn open(&self) {
        let mut st = self.state();
        if *st == GateState::Closed {
            *st = GateState::Open;
        }
        self.0.1.notify_all();
    }

    pub fn is_open(&self) -> bool {
        *self.state() == GateState::Open
    }

    /// True when a held download gave up waiting before the gate was opened.
    pub fn expired(&self) -> bool {
        *self.state() == GateState::Expired
    }

    pub(super) fn expire(&self) {
        let mut st = self.state();
        if *st == GateState::Closed {
            *st = GateState::Expired;
        }
        self.0.1.notify_all();
    }

    /// Waits until opened (true) or `timeout` passes, which expires the gate (false).
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let guard = self.state();
        let (mut st, _) = self
            .0
            .1
            .wait_timeout_while(guard, timeout, |s| *s == GateState::Closed)
            .unwrap_or_else(|e| e.into_inner());
        if *st == GateState::Closed {
            *st = GateState::Expired;
            self.0.1.notify_all();
        }
        *st == GateState::Open
    }
}
