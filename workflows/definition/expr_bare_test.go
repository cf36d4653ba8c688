package definition

import (
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
)

// compileBare compiles with plain expr, without the sandbox, as the
// baseline for benchmarks.
func compileBare(src string) (*vm.Program, error) {
	return expr.Compile(src, expr.Env(types.Map{"input": types.Any, "steps": types.Any, "vars": types.Any, "item": types.Any, "index": types.Any}))
}

func runBare(p *vm.Program, env map[string]any) (any, error) { return expr.Run(p, env) }
