export { analyze, judgeBackfill, STORE_FAILING_MESSAGE, type AnalysisInput, type BackfillJudgement, type AnalysisResult, type CheckpointRecord, type Decision, type DecisionKind, type DecisionTrigger, type JudgedCheck, type StepRecord } from './analyze';
export { measurementSchema, probeSchema, type BackfillStatus, type Measurement, type Probe } from './measurement';
export { metricValues, type Counts, type MetricValues } from './counters';
export { wilsonInterval } from './stats';
export { judgeMetric, type MetricJudgement, type Verdict } from './judge';
