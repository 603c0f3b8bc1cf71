// Added to github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno/processor at build time (go build -overlay; see
// tools/setup/go-tool.sh). The CLI of v1.19.1 builds a new provider, which compiles every ValidatingPolicy and
// its auto-generated variants, for each resource it applies them to: at 12 policies that is about 0.2 s of CPU
// per resource, nearly all of a large gate's time. A provider holds only the compiled policies, so one provider
// per set of policies and exceptions serves every resource of the run.

package processor

import (
	"fmt"
	"strings"
	"sync"

	policiesv1beta1 "github.com/kyverno/api/api/policies.kyverno.io/v1beta1"
	vpolcompiler "github.com/kyverno/kyverno/pkg/cel/policies/vpol/compiler"
	vpolengine "github.com/kyverno/kyverno/pkg/cel/policies/vpol/engine"
)

var (
	compiledValidatingMu    sync.Mutex
	compiledValidatingByKey = map[string]vpolengine.ProviderFunc{}
)

// compiledValidatingPolicies is vpolengine.NewProvider, memoized on the identity of the policy and exception
// objects: the CLI loads them once and passes the same objects for every resource.
func compiledValidatingPolicies(
	compiler vpolcompiler.Compiler,
	policies []policiesv1beta1.ValidatingPolicyLike,
	exceptions []*policiesv1beta1.PolicyException,
) (vpolengine.ProviderFunc, error) {
	var key strings.Builder
	for _, p := range policies {
		fmt.Fprintf(&key, "p%p;", p)
	}
	for _, e := range exceptions {
		fmt.Fprintf(&key, "e%p;", e)
	}
	compiledValidatingMu.Lock()
	defer compiledValidatingMu.Unlock()
	if provider, ok := compiledValidatingByKey[key.String()]; ok {
		return provider, nil
	}
	provider, err := vpolengine.NewProvider(compiler, policies, exceptions)
	if err != nil {
		return nil, err
	}
	compiledValidatingByKey[key.String()] = provider
	return provider, nil
}
