package connections

import (
	"fmt"
	"strings"

	"github.com/initializer/initializer/fault"
)

// FieldError is one mistake in a catalog: which connection, which field, and
// what was expected.
type FieldError struct {
	Origin     string // file and position, e.g. "catalog.yaml connections[2]"
	Connection string // the connection's name, when it has one
	Field      string // the field's path, e.g. "schema.mountPath"
	Message    string // what is wrong and what is expected
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.Connection != "" {
		fmt.Fprintf(&b, "connection %q", e.Connection)
		if e.Origin != "" {
			fmt.Fprintf(&b, " (%s)", e.Origin)
		}
	} else {
		b.WriteString(e.Origin)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %s", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// ValidationError lists every mistake found in a catalog.
type ValidationError struct {
	Source string
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return "invalid connection catalog " + e.Source + ": " + e.Errors[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid connection catalog %s: %d errors:", e.Source, len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  - ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// asError returns nil for no errors, else a Usage-class ValidationError.
func asError(source string, errs []FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	return fault.Wrap(fault.Usage, &ValidationError{Source: source, Errors: errs})
}
