// CDK app entry point (cdk.json: "app": "node infra/app.ts"; Node 24 strips the types).
import { App } from "aws-cdk-lib";
import { definePristineApp } from "./pristine-app.ts";

const app = new App();
definePristineApp(app);
app.synth();
