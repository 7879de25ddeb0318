/** Consumer group `analytics` (`npm run consumer:analytics`): orders and revenue per day and currency. */
import { consumerGroups } from './runtime/groups.ts';
import { runConsumer } from './runtime/run-consumer.ts';

runConsumer(consumerGroups.analytics);
