// Command leptoncluster is one multi-call binary holding the control plane of the
// e2e harness: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kubectl, all built from the published Go modules because this machine has no
// container engine and cannot download release binaries.
//
// The component is chosen by the name the binary is called by (symlinks named
// kube-apiserver, kubectl, ...) or by the first argument. Each component must run
// as its own process: they share global feature-gate and flag state, so two in
// one process clash.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata" // CronJob time-zone support, as the upstream mains do

	"github.com/spf13/cobra"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

var components = map[string]func([]string) int{
	"etcd":                    runEtcd,
	"kube-apiserver":          func([]string) int { return runCobra(apiserver.NewAPIServerCommand()) },
	"kube-controller-manager": func([]string) int { return runCobra(controllermanager.NewControllerManagerCommand()) },
	"kube-scheduler":          func([]string) int { return runCobra(scheduler.NewSchedulerCommand()) },
	"kubectl":                 runKubectl,
}

func runCobra(command *cobra.Command) int {
	return cli.Run(command)
}

func runKubectl([]string) int {
	logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) // nolint:errcheck
	if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
		kubectlutil.CheckErr(err)
	}
	return 0
}

func main() {
	name := filepath.Base(os.Args[0])
	if _, ok := components[name]; !ok {
		if len(os.Args) < 2 {
			usage()
		}
		name = os.Args[1]
		// Shift so cobra sees the component's own flags as os.Args[1:].
		os.Args = append([]string{name}, os.Args[2:]...)
	}
	run, ok := components[name]
	if !ok {
		usage()
	}
	os.Exit(run(os.Args[1:]))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: leptoncluster {etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubectl} [flags]")
	os.Exit(2)
}
