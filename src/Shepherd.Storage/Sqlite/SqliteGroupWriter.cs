namespace Shepherd.Storage.Sqlite;

using System.Threading.Channels;
using Microsoft.Data.Sqlite;

/// <summary>
/// One writer with group commit: callers queue small write operations; a single loop runs every operation waiting
/// (up to <see cref="MaxBatch"/>) in one transaction on its own connection with <c>PRAGMA synchronous=FULL</c>, and
/// answers each caller once the transaction is durable (the write-ahead log fsync'd).
/// </summary>
/// <remarks>
/// <para>One fsync per batch rather than per operation is what keeps durable writes fast under load: while one batch
/// commits, the next gathers. Writers never meet each other in SQLite's busy handler (which sleeps in steps of
/// milliseconds); they queue here, in memory, and are woken the moment their batch commits.</para>
/// <para>Checkpoints (copying the write-ahead log back into the database file, with its own fsync) would otherwise
/// run inside whichever commit crosses SQLite's threshold and stall every caller of that batch; this connection turns
/// automatic checkpoints off and a background task checkpoints (PASSIVE: never blocking the writer) after commits.</para>
/// <para>Each operation runs inside a savepoint: one that throws is rolled back alone and its caller gets the
/// exception; the others commit. When the commit itself fails, every caller in the batch gets the error (nothing was
/// written) and the connection is reopened for the next batch.</para>
/// </remarks>
public sealed class SqliteGroupWriter : IAsyncDisposable
{
    public const int MaxBatch = 1024;

    private readonly SqliteDatabase _database;
    private readonly Channel<Operation> _queue = Channel.CreateUnbounded<Operation>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _loop;
    private static readonly TimeSpan CheckpointInterval = TimeSpan.FromMilliseconds(500);

    private SqliteConnection? _connection;
    private long _commits;
    private Task _checkpoint = Task.CompletedTask;
    private long _lastCheckpoint;

    public SqliteGroupWriter(SqliteDatabase database)
    {
        _database = database;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Transactions committed so far.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Queues an operation; completes once the batch holding it is committed durably.</summary>
    /// <remarks>Not cancellable once queued: the caller may stop waiting, the write still happens.</remarks>
    public Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work)
    {
        var operation = new Operation<T>(work);
        ObjectDisposedException.ThrowIf(!_queue.Writer.TryWrite(operation), this);

        return operation.Done.Task;
    }

    private async Task RunAsync()
    {
        var batch = new List<Operation>(MaxBatch);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var operation))
            {
                batch.Add(operation);
            }

            try
            {
                var connection = _connection ??= await OpenAsync().ConfigureAwait(false);
                await using (var transaction = (SqliteTransaction)await connection.BeginTransactionAsync().ConfigureAwait(false))
                {
                    for (var i = 0; i < batch.Count; i++)
                    {
                        transaction.Save("op");
                        try
                        {
                            await batch[i].RunAsync(connection, transaction).ConfigureAwait(false);
                            transaction.Release("op");
                        }
                        catch (Exception ex) when (ex is not SqliteException { SqliteErrorCode: 10 or 13 }) // not an I/O error or a full disk
                        {
                            transaction.Rollback("op");
                            transaction.Release("op");
                            batch[i].Fail(ex);
                        }
                    }

                    await transaction.CommitAsync().ConfigureAwait(false);
                }

                Interlocked.Increment(ref _commits);
                foreach (var operation in batch)
                {
                    operation.Succeed();
                }

                StartCheckpointIfDue();
            }
            catch (Exception ex)
            {
                foreach (var operation in batch)
                {
                    operation.Fail(ex);
                }

                if (_connection is not null)
                {
                    await CloseAsync(_connection).ConfigureAwait(false);
                    _connection = null;
                }
            }

            batch.Clear();
        }

        await _checkpoint.ConfigureAwait(false);
        if (_connection is not null)
        {
            await CloseAsync(_connection).ConfigureAwait(false);
        }

        // What is left in the log is checkpointed by the next connection that needs it (or when the file is opened).
    }

    private void StartCheckpointIfDue()
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (!_checkpoint.IsCompleted || System.Diagnostics.Stopwatch.GetElapsedTime(_lastCheckpoint, now) < CheckpointInterval)
        {
            return;
        }

        _lastCheckpoint = now;
        _checkpoint = Task.Run(async () =>
        {
            try
            {
                await using var connection = await _database.OpenAsync(CancellationToken.None).ConfigureAwait(false);
                await using var checkpoint = connection.CreateCommand();
                checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
                await checkpoint.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
            catch (SqliteException)
            {
                // Busy or failing: the next one tries again; the log only grows meanwhile.
            }
        });
    }

    /// <summary>Gives the connection back to the pool with automatic checkpoints on again.</summary>
    private static async Task CloseAsync(SqliteConnection connection)
    {
        try
        {
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA wal_autocheckpoint=1000";
            await pragma.ExecuteNonQueryAsync().ConfigureAwait(false);
        }
        catch (SqliteException)
        {
        }
        catch (InvalidOperationException)
        {
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    private async Task<SqliteConnection> OpenAsync()
    {
        var connection = await _database.OpenAsync(CancellationToken.None).ConfigureAwait(false);
        await using var pragma = connection.CreateCommand();

        // FULL: the WAL is fsync'd at every commit, so what a caller was told is written survives a power cut.
        // No automatic checkpoint inside a commit: the background checkpoint does it off the callers' path.
        pragma.CommandText = "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0";
        await pragma.ExecuteNonQueryAsync().ConfigureAwait(false);
        return connection;
    }

    /// <summary>Runs what is queued, then stops.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private abstract class Operation
    {
        public abstract Task RunAsync(SqliteConnection connection, SqliteTransaction transaction);

        public abstract void Succeed();

        public abstract void Fail(Exception exception);
    }

    private sealed class Operation<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work) : Operation
    {
        private T _result = default!;
        private bool _failed;

        public TaskCompletionSource<T> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task RunAsync(SqliteConnection connection, SqliteTransaction transaction) =>
            _result = await work(connection, transaction).ConfigureAwait(false);

        public override void Succeed()
        {
            if (!_failed)
            {
                Done.TrySetResult(_result);
            }
        }

        public override void Fail(Exception exception)
        {
            _failed = true;
            Done.TrySetException(exception);
        }
    }
}
