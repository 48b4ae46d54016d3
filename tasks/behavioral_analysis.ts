import { behavioralAnalysis } from "../src/jobs/behavioral_analysis/index.ts";

export default behavioralAnalysis.task;
