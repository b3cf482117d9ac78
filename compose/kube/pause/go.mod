// The node's pod sandbox ("pause") process, built with the node: registry.k8s.io is not
// reachable here, so the stack makes its own sandbox image (compose/node.py).
module kafkube.local/pause

go 1.25.0
