export * from './client';
export * from './errors';
export * from './types';
export { TokenBucket, type Clock, type Sleep } from './pacing';
