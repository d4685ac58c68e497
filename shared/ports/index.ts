/**
 * Ports: what the domain needs from the outside world. Adapters (DynamoDB, SQS, S3, qcow2, QEMU)
 * implement them; the domain never imports an SDK. They depend on the model and the message
 * schemas only.
 */
import type { DrPorts } from "./dr.ts";
import type { EventBus, HostRepository, HostRuntime, ScreenshotRepository } from "./hosts.ts";
import type { MetricRecorder, MetricSeriesRepository } from "./metrics.ts";
import type { JobQueue } from "./queues.ts";
import type { QuotaRepository } from "./quotas.ts";
import type {
  DatastoreRepository,
  DesktopRepository,
  ImageRepository,
  LogonQueueRepository,
  PoolRepository,
  ReplicaRepository,
  SessionRepository,
  TenantRepository,
} from "./repositories.ts";
import type { StorageDriver } from "./storage.ts";

export type * from "./dr.ts";
export type * from "./hosts.ts";
export type * from "./hypervisor.ts";
export type * from "./metrics.ts";
export type * from "./queues.ts";
export type * from "./quotas.ts";
export type * from "./repositories.ts";
export type * from "./storage.ts";

export interface Clock {
  now(): Date;
}

export interface Ports extends DrPorts {
  tenants: TenantRepository;
  images: ImageRepository;
  pools: PoolRepository;
  logonQueue: LogonQueueRepository;
  desktops: DesktopRepository;
  sessions: SessionRepository;
  datastores: DatastoreRepository;
  quotas: QuotaRepository;
  replicas: ReplicaRepository;
  jobs: JobQueue;
  storage: StorageDriver;
  clock: Clock;
  hosts: HostRepository;
  screenshots: ScreenshotRepository;
  events: EventBus;
  metrics: MetricRecorder;
  metricSeries: MetricSeriesRepository;
  /** Only in a host agent: the VMs it runs. */
  host?: HostRuntime;
}
