import { behavioralAnalysis } from "../src/platform/jobs/behavioral_analysis/index.ts";

export default behavioralAnalysis.task;
