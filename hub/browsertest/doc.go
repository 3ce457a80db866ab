// Package browsertest holds Ferry's browser tests: they build the real
// binaries (ferry-hub, ferry-agent, apim-sim) through the workspace, run a
// hub, two APIM stand-ins and two linked agents as processes on loopback,
// and drive the environment consoles and the hub console in headless
// Chromium with chromedp, walking the promotion steps an admin follows.
// Each step's screenshot is saved under $FERRY_TEST_OUT (default
// <repo>/out/browser/).
//
// Chromium must be installed (scripts/ensure-chromium.sh installs the Debian
// package); FERRY_CHROMIUM overrides its path. The package has no non-test
// code.
package browsertest
