export { analyze, STORE_FAILING_MESSAGE, type AnalysisInput, type AnalysisResult, type CheckpointRecord, type Decision, type DecisionKind, type DecisionTrigger, type JudgedCheck, type StepRecord } from './analyze';
export { measurementSchema, probeSchema, type Measurement, type Probe } from './measurement';
export { metricValues, type Counts, type MetricValues } from './counters';
export { wilsonInterval } from './stats';
export { judgeMetric, type MetricJudgement, type Verdict } from './judge';
