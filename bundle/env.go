package bundle

import "strings"

// Variables the runner protocol sets or reads (FERRY_SOCKET, FERRY_SPARE,
// AWS_LAMBDA_FUNCTION_NAME, ...): a function's own env cannot set them. The
// prefixes are reserved whole, for what later versions add.
var (
	reservedEnvPrefixes = []string{"FERRY_", "AWS_LAMBDA_"}
	reservedEnvNames    = map[string]bool{"LAMBDA_TASK_ROOT": true, "_HANDLER": true, "HOME": true}
)

// ReservedEnv reports whether name is set by Ferry itself and therefore not
// allowed in a function's env (the API rejects such deployments; versions
// stored before a name was reserved run without it).
func ReservedEnv(name string) bool {
	for _, p := range reservedEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return reservedEnvNames[name]
}
