//! Bounds on what SQL expressions may allocate.
//!
//! DataFusion's memory pool accounts the operators that buffer (sorts,
//! joins, aggregations), not the arrays scalar functions build: one
//! `repeat('x', 1000000000)` allocates a gigabyte outside any pool. So
//! every scalar function of a query's session is wrapped:
//! - before it runs, the functions that can multiply their input
//!   (`repeat`, `lpad`, `rpad`, `replace`) have the size of their result
//!   computed from their arguments and are refused when one value, or the
//!   batch, would exceed its limit — before anything is allocated;
//! - after any function runs, its result is measured, so chains of
//!   functions stop at the first result over the limit;
//! - constants folded at planning are checked as if copied into a batch;
//! - each batch the plan yields is measured while streaming.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::compute::{cast, max as array_max};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ExprSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, LogicalPlan, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What one query's expressions may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GuardLimits {
    /// Rows per batch the plan works in.
    pub batch_size: usize,
    /// Largest single value (a string, say) an expression may make.
    pub max_value_bytes: usize,
    /// Largest batch (or one function's result over a batch).
    pub max_batch_bytes: usize,
}

impl Default for GuardLimits {
    fn default() -> Self {
        GuardLimits {
            batch_size: 2048,
            max_value_bytes: 1024 * 1024,
            max_batch_bytes: 64 * 1024 * 1024,
        }
    }
}

fn exhausted(msg: String) -> DataFusionError {
    DataFusionError::ResourcesExhausted(msg)
}

/// Replaces every scalar function of `ctx` by a guarded one.
pub(crate) fn guard_functions(ctx: &SessionContext, limits: &GuardLimits) {
    let state = ctx.state();
    let mut seen = std::collections::HashSet::new();
    let udfs: Vec<Arc<ScalarUDF>> = state
        .scalar_functions()
        .values()
        .filter(|f| seen.insert(f.name().to_string()))
        .cloned()
        .collect();
    for f in udfs {
        ctx.register_udf(ScalarUDF::new_from_impl(Guarded {
            inner: f.inner().clone(),
            limits: *limits,
        }));
    }
}

/// Refuses a plan whose constants are too large to copy into a batch.
pub(crate) fn check_constants(plan: &LogicalPlan, limits: &GuardLimits) -> Result<()> {
    let per_value = limits
        .max_value_bytes
        .min(limits.max_batch_bytes / limits.batch_size.max(1));
    let mut err = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Literal(v, _) = e {
                    let size = v.size();
                    if size > per_value {
                        err = Some(exhausted(format!(
                            "a constant of {size} bytes is larger than the {per_value} bytes one \
                             may have ([query] max_value_bytes, max_batch_bytes / batch_size)"
                        )));
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Refuses a batch over the limit.
pub(crate) fn check_batch(bytes: usize, limits: &GuardLimits) -> Result<()> {
    if bytes > limits.max_batch_bytes {
        return Err(exhausted(format!(
            "a batch of {bytes} bytes is over the {} byte limit ([query] max_batch_bytes)",
            limits.max_batch_bytes
        )));
    }
    Ok(())
}

/// One argument, as a number per row: a string's byte length or an
/// integer's value.
enum Arg {
    One(Option<i64>),
    Many(Int64Array),
}

impl Arg {
    fn of(v: &ColumnarValue, string: bool) -> Result<Arg> {
        Ok(match v {
            ColumnarValue::Scalar(s) if string => Arg::One(match s {
                ScalarValue::Utf8(Some(x))
                | ScalarValue::LargeUtf8(Some(x))
                | ScalarValue::Utf8View(Some(x)) => Some(x.len() as i64),
                _ => None,
            }),
            ColumnarValue::Scalar(s) => Arg::One(match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(n) => n,
                _ => None,
            }),
            ColumnarValue::Array(a) => {
                let a: ArrayRef = if string { length(a)? } else { a.clone() };
                let a = cast(&a, &DataType::Int64)?;
                Arg::Many(a.as_primitive::<Int64Type>().clone())
            }
        })
    }

    fn get(&self, row: usize) -> i64 {
        match self {
            Arg::One(v) => v.unwrap_or(0),
            Arg::Many(a) => {
                if a.is_valid(row) {
                    a.value(row)
                } else {
                    0
                }
            }
        }
    }

    fn max(&self) -> i64 {
        match self {
            Arg::One(v) => v.unwrap_or(0),
            Arg::Many(a) => array_max(a).unwrap_or(0),
        }
    }
}

/// The most bytes function `name` can make from `args` in one row, for
/// the functions that can make much more than they are given.
fn bound(name: &str, args: &[ColumnarValue], rows: usize) -> Result<Option<(u128, u128)>> {
    let nat = |v: i64| v.max(0) as u128;
    // (largest value, total over the batch)
    let fold = |f: &dyn Fn(usize) -> u128, all_scalar: bool| -> (u128, u128) {
        if all_scalar {
            let v = f(0);
            (v, v.saturating_mul(rows as u128))
        } else {
            let mut most = 0u128;
            let mut total = 0u128;
            for r in 0..rows {
                let v = f(r);
                most = most.max(v);
                total = total.saturating_add(v);
            }
            (most, total)
        }
    };
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    Ok(match (name, args.len()) {
        ("repeat", 2) => {
            let s = Arg::of(&args[0], true)?;
            let n = Arg::of(&args[1], false)?;
            // Quick refusal before a pass over the rows.
            if nat(s.max()).saturating_mul(nat(n.max())) == 0 {
                return Ok(None);
            }
            Some(fold(
                &|r| nat(s.get(r)).saturating_mul(nat(n.get(r))),
                all_scalar,
            ))
        }
        ("lpad" | "rpad", 2 | 3) => {
            let n = Arg::of(&args[1], false)?;
            // Characters of up to 4 bytes each.
            Some(fold(&|r| nat(n.get(r)).saturating_mul(4), all_scalar))
        }
        ("replace", 3) => {
            let s = Arg::of(&args[0], true)?;
            let from = Arg::of(&args[1], true)?;
            let to = Arg::of(&args[2], true)?;
            Some(fold(
                &|r| {
                    let len = nat(s.get(r));
                    let hits = len / nat(from.get(r)).max(1) + 1;
                    len.saturating_add(hits.saturating_mul(nat(to.get(r))))
                },
                all_scalar,
            ))
        }
        _ => None,
    })
}

/// A scalar function with its results bounded.
#[derive(Debug)]
struct Guarded {
    inner: Arc<dyn ScalarUDFImpl>,
    limits: GuardLimits,
}

impl PartialEq for Guarded {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) && self.limits == other.limits
    }
}

impl Eq for Guarded {}

impl Hash for Guarded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
        self.limits.hash(state);
    }
}

impl Guarded {
    fn too_big(&self, what: &str, bytes: u128, limit: usize, key: &str) -> DataFusionError {
        exhausted(format!(
            "{}() would make {what} of {bytes} bytes, over the {limit} byte limit ([query] {key})",
            self.inner.name()
        ))
    }

    fn check_before(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let Some((most, total)) = bound(self.inner.name(), &args.args, args.number_rows)? else {
            return Ok(());
        };
        self.value_within(most)?;
        self.batch_within(total)
    }

    fn check_after(&self, out: &ColumnarValue, rows: usize) -> Result<()> {
        match out {
            ColumnarValue::Array(a) => self.batch_within(a.get_array_memory_size() as u128),
            ColumnarValue::Scalar(s) => {
                let size = s.size() as u128;
                self.value_within(size)?;
                self.batch_within(size.saturating_mul(rows as u128))
            }
        }
    }

    /// One value of `bytes` against `[query] max_value_bytes`.
    fn value_within(&self, bytes: u128) -> Result<()> {
        let limit = self.limits.max_value_bytes;
        if bytes > limit as u128 {
            return Err(self.too_big("a value", bytes, limit, "max_value_bytes"));
        }
        Ok(())
    }

    /// One batch of `bytes` against `[query] max_batch_bytes`.
    fn batch_within(&self, bytes: u128) -> Result<()> {
        let limit = self.limits.max_batch_bytes;
        if bytes > limit as u128 {
            return Err(self.too_big("a batch", bytes, limit, "max_batch_bytes"));
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    #[allow(deprecated)]
    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        self.inner.is_nullable(args, schema)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check_before(&args)?;
        let rows = args.number_rows;
        let out = self.inner.invoke_with_args(args)?;
        self.check_after(&out, rows)?;
        Ok(out)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        self.inner.with_updated_config(config).map(|u| {
            ScalarUDF::new_from_impl(Guarded {
                inner: u.inner().clone(),
                limits: self.limits,
            })
        })
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.placement(args)
    }
}
