package ferry

// Error types: the Type of an invocation's error (FunctionError) or of a chain
// run's error (ChainError) when Ferry, not the function's own code, ended it,
// and the types of the failures Ferry's workflows and activities report to
// Temporal (what its UI shows). Every one Ferry sets is listed here, once;
// docs/API.md lists them for users. A function's own errors keep the type its
// runtime gives them (the exception's class, the JS error's name, the Go
// error's type), and its runner reports the few of runtimes/README.md
// ("Error types") that no Go code here sets (Runtime.MarshalError, ...).
const (
	// Set by the executor, with a message that says what happened.

	// ErrTypeRuntimeTimeout: the invocation, or loading the function, ran out
	// of its timeout (status timeout).
	ErrTypeRuntimeTimeout = "Runtime.Timeout"
	// ErrTypeOutOfMemory: the container was killed for passing its memory
	// limit (status failed).
	ErrTypeOutOfMemory = "OutOfMemory"
	// ErrTypeExit: the runtime exited while it loaded or ran the function.
	ErrTypeExit = "Runtime.ExitError"
	// ErrTypeInit: the handler could not be loaded.
	ErrTypeInit = "Runtime.InitError"
	// ErrTypeProtocol: the runner broke the protocol between it and the worker.
	ErrTypeProtocol = "Runtime.ProtocolError"
	// ErrTypeResultTooLarge: the result passed the largest one Ferry keeps.
	ErrTypeResultTooLarge = "Runtime.ResultTooLarge"
	// ErrTypeDurableUnavailable: a durable operation (a step's checkpoint) of
	// an invocation that cannot record one.
	ErrTypeDurableUnavailable = "Runtime.DurableUnavailable"
	// ErrTypeError: a failure with no type of its own (a runner that failed
	// without saying why, a step that did not complete).
	ErrTypeError = "Error"

	// Set by the worker before or after running the function.

	// ErrTypeFunctionNotFound: the function (or a chain step's function) was
	// deleted after the run was accepted. Also the Temporal failure type of a
	// chain step whose function is missing.
	ErrTypeFunctionNotFound = "FunctionNotFound"
	// ErrTypeBuild: a Go function's code does not build.
	ErrTypeBuild = "BuildError"
	// ErrTypeInvalidConfig: the function's version can never start (limits out
	// of bounds, settings the container engine refuses).
	ErrTypeInvalidConfig = "InvalidConfiguration"
	// ErrTypeSecret: the function's secrets could not be resolved (deleted,
	// or sealed with a key the worker does not hold).
	ErrTypeSecret = "SecretUnavailable"
	// ErrTypeTimeout: the function timed out without the executor's own
	// diagnosis, or its workflow timed out (found by the reconciler).
	ErrTypeTimeout = "Timeout"
	// ErrTypeScheduleRefused: a schedule firing that did not run its target
	// (its owner key was revoked, its function deleted).
	ErrTypeScheduleRefused = "ScheduleRefused"
	// ErrTypeMapInput: the input of a map step is not a JSON array.
	ErrTypeMapInput = "MapInputNotArray"
	// ErrTypeMapTooLarge: the input of a map step has too many elements.
	ErrTypeMapTooLarge = "MapTooLarge"

	// Set by the workflows.

	// ErrTypeFunctionFailed: the function failed. It is also the type of the
	// activity failure by which a failed function with retries left asks
	// Temporal for another attempt, and the Temporal failure type of an
	// InvokeFunction workflow whose function failed; recorded when the
	// retries ran out that way.
	ErrTypeFunctionFailed = "FunctionFailed"
	// ErrTypeFunctionTimeout: the Temporal failure type of an InvokeFunction
	// workflow whose function timed out.
	ErrTypeFunctionTimeout = "FunctionTimeout"
	// ErrTypeInfrastructure: the worker could not run the invocation before
	// its time budget ran out (a store, S3 or the container engine kept
	// failing).
	ErrTypeInfrastructure = "InfrastructureError"
	// ErrTypeCancelled: cancelled by request.
	ErrTypeCancelled = "Cancelled"
	// ErrTypeStepFailed: a chain step failed; the chain run's error. Also the
	// Temporal failure type of a RunChain workflow that failed.
	ErrTypeStepFailed = "StepFailed"
	// ErrTypeInvalidTarget: the Temporal failure type of a schedule firing
	// whose target kind is unknown.
	ErrTypeInvalidTarget = "InvalidTarget"
	// ErrTypeInternal: the Temporal failure type of a schedule firing on a
	// worker that cannot record it.
	ErrTypeInternal = "Internal"

	// Set by the API.

	// ErrTypeStartError: the run was recorded but its workflow could not be
	// started (Temporal unavailable); it may be retried.
	ErrTypeStartError = "StartError"

	// Set by the reconciler, which closes the records of workflows that ended
	// without writing them.

	// ErrTypeTerminated: the workflow was terminated.
	ErrTypeTerminated = "Terminated"
	// ErrTypeWorkflowFailed: the workflow failed without recording why.
	ErrTypeWorkflowFailed = "WorkflowFailed"
	// ErrTypeUnrecorded: the workflow completed without writing the record.
	ErrTypeUnrecorded = "Unrecorded"
	// ErrTypeWorkflowNotFound: Temporal no longer knows the workflow.
	ErrTypeWorkflowNotFound = "WorkflowNotFound"
)
