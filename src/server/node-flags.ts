/**
 * V8 flags every raftlock server process runs with: `npm start`, the `raftlock-server` bin (its
 * shebang), the Docker image, `npm run cluster` and the test and benchmark harnesses pass them.
 *
 * A young generation of a fixed 16 MiB per semi-space. By default V8 starts it small, grows it
 * under load and shrinks it again, giving pages back to the kernel and faulting them in anew;
 * a lock server allocates short-lived objects for every command, so that churn is steady. Fixed,
 * the pages stay mapped: on a 3-node cluster sharing two cores this took 5-7% off the CPU per
 * KLOCK (PERSISTENT and EPHEMERAL) and a third to two thirds of the page faults of the nodes
 * that serve forwarded commands, for 32 MiB of young generation per process.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16', '--max-semi-space-size=16'];
