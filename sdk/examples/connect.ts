/**
 * Connect a creator account with @fangate/sdk and follow every checkpoint.
 *
 *   FANGATE_URL=http://localhost:8080 FANGATE_API_KEY=fg_… node --import tsx examples/connect.ts jane+sms+email@sandbox.test
 *
 * Against the sandbox platform the codes are known (SMS 123456, email 654321); in your product the
 * creator types them into your UI, which is what `askCreator` stands for here.
 */
import { type Checkpoint, createFanGate, FanGateAttemptFailedError, FanGateProblemError } from '@fangate/sdk';

const fangate = createFanGate({ baseUrl: process.env.FANGATE_URL ?? 'http://localhost:8080', apiKey: process.env.FANGATE_API_KEY ?? '' });

/** Your UI asking the creator for the code of `checkpoint.channel` (sandbox: the fixed codes). */
async function askCreator(checkpoint: Checkpoint): Promise<string> {
  return checkpoint.channel === 'email' ? '654321' : '123456';
}

async function onCheckpoint(checkpoint: Checkpoint): Promise<void> {
  console.log(`checkpoint ${checkpoint.state}: ${checkpoint.attempt.progress}`);
  if (checkpoint.nextActions[0] === 'send_email_to_creator') {
    // The platform sends the device-check email only when asked; then the attempt shows email_sent_at.
    const sent = await checkpoint.sendEmailToCreator();
    console.log(`email sent at ${sent.email_sent_at} to ${checkpoint.emailMask}`);
    return;
  }
  if (checkpoint.nextActions.includes('submit_code')) {
    const left = checkpoint.attemptsRemaining === null ? '' : ` (${checkpoint.attemptsRemaining} tries left)`;
    console.log(`code by ${checkpoint.channel}${checkpoint.phoneLast4 ? ` to •••${checkpoint.phoneLast4}` : ''}${left}`);
    await checkpoint.submitCode(await askCreator(checkpoint));
    return;
  }
  if (checkpoint.faceVerificationUrl) console.log(`send the creator to ${checkpoint.faceVerificationUrl}, then call checkpoint.confirmSelfie()`);
}

const email = process.argv[2] ?? 'jane+sms@sandbox.test';
try {
  const account = await fangate.connect({ email, password: 'password', client_reference_id: 'example-creator' }, { onCheckpoint });
  console.log(`connected ${account.id} (@${account.platform_user.username}, status ${account.status})`);
} catch (error) {
  if (error instanceof FanGateAttemptFailedError) console.error(`the attempt failed: ${error.code} (${error.message})`);
  else if (error instanceof FanGateProblemError) console.error(`FanGate answered ${error.status} ${error.code}: ${error.message}`, error.errors);
  else throw error;
  process.exitCode = 1;
}
