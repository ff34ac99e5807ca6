import { Logger } from '@nestjs/common';

// Library logs go to Nest's Logger; tests keep them quiet unless TEST_LOGS is set.
Logger.overrideLogger(process.env.TEST_LOGS ? ['error', 'warn', 'log'] : false);
