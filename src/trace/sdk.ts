/**
 * The OpenTelemetry SDK behind --trace: loaded only when tracing is on, configured by the standard
 * OTEL_* environment (exporter, endpoint, protocol, headers, service name, resource attributes, batch
 * processor settings). Sampling is raftlock's own (Tracing.sample, before any span exists), so the
 * SDK records every span it is given; OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG set the ratio
 * unless --trace-sample-ratio does.
 */
import type { Tracer } from '@opentelemetry/api';
import type { ServerConfig } from '../server/config.js';
import { RAFTLOCK_VERSION } from '../commands/version.js';
import { traceIds, Tracing } from './trace.js';

export interface TracingRuntime {
  readonly tracing: Tracing;
  /** Creates the spans of finished traces, exports what is buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

/**
 * The sampling ratio: --trace-sample-ratio, else what OTEL_TRACES_SAMPLER says (always_on: 1,
 * always_off: 0, traceidratio and parentbased_traceidratio: OTEL_TRACES_SAMPLER_ARG, default 1),
 * else 1. Throws for a sampler or argument raftlock cannot honour.
 */
export function samplingRatio(flag: number | undefined, env: NodeJS.ProcessEnv): number {
  if (flag !== undefined) return flag;
  const sampler = (env['OTEL_TRACES_SAMPLER'] ?? '').trim().toLowerCase();
  switch (sampler) {
    case '':
    case 'always_on':
    case 'parentbased_always_on':
      return 1;
    case 'always_off':
    case 'parentbased_always_off':
      return 0;
    case 'traceidratio':
    case 'parentbased_traceidratio': {
      const text = (env['OTEL_TRACES_SAMPLER_ARG'] ?? '').trim();
      if (text === '') return 1;
      const ratio = Number(text);
      if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new Error(`OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, got '${text}'`);
      return ratio;
    }
    default:
      throw new Error(`OTEL_TRACES_SAMPLER=${sampler} is not supported (always_on, always_off, traceidratio, parentbased_traceidratio)`);
  }
}

/**
 * Starts the SDK and returns the node's Tracing; a test may pass its own tracer instead (its
 * provider's idGenerator must be traceIds).
 */
export async function startTracing(config: ServerConfig, env: NodeJS.ProcessEnv = process.env, tracer?: Tracer): Promise<TracingRuntime> {
  const ratio = samplingRatio(config.traceSampleRatio, env);
  const options = { ratio, keys: config.traceKeys, nodeId: config.nodeId };
  if (tracer !== undefined) {
    const own = new Tracing({ ...options, tracer });
    return { tracing: own, shutdown: () => Promise.resolve(own.flush()) };
  }
  const { NodeSDK, tracing, resources, api } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({
    serviceName: env['OTEL_SERVICE_NAME'] ?? 'raftlock',
    resource: resources.resourceFromAttributes({ 'service.instance.id': config.nodeId, 'service.version': RAFTLOCK_VERSION }),
    sampler: new tracing.AlwaysOnSampler(),
    idGenerator: traceIds,
    instrumentations: [],
    // raftlock hands every span its parent; a global context manager (AsyncLocalStorage) would
    // only make every promise of every command, sampled or not, carry a context: none is registered.
    contextManager: null as unknown as undefined,
    textMapPropagator: null,
  });
  sdk.start();
  const nodeTracing = new Tracing({ ...options, tracer: api.trace.getTracer('raftlock', RAFTLOCK_VERSION) });
  return {
    tracing: nodeTracing,
    shutdown: () => {
      nodeTracing.flush();
      return sdk.shutdown();
    },
  };
}
