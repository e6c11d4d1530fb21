//! The trained network's parameters, shared by the trainer (which writes them into the
//! checkpoint) and the exporters (TensorFlow GraphDef / SavedModel).
//!
//! The network is the seed notebook's Keras `DeepCollaborativeFiltering`:
//! `user` → Embedding(n_customers × k), `product` → Embedding(n_products × k), concat (2k),
//! Dropout, Dense k + ReLU (`dense_1`), Dropout, Dense 1 (`dense_2`), with k = `n_factors`.
//! Matrices are row-major; Dense kernels are `[inputs, outputs]` as in Keras.

/// Tensor names used in every artifact (checkpoint, ONNX graphs, TensorFlow graphs).
pub const CUSTOMER_EMBEDDING: &str = "customer_embedding";
pub const PRODUCT_EMBEDDING: &str = "product_embedding";
pub const DENSE_1_KERNEL: &str = "dense_1/kernel";
pub const DENSE_1_BIAS: &str = "dense_1/bias";
pub const DENSE_2_KERNEL: &str = "dense_2/kernel";
pub const DENSE_2_BIAS: &str = "dense_2/bias";

/// Graph input and output names the serving side uses.
pub const INPUT_USER: &str = "user";
pub const INPUT_PRODUCT: &str = "product";
pub const OUTPUT: &str = "dense_2/BiasAdd";

#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    pub n_customers: usize,
    pub n_products: usize,
    /// k: embedding width and `dense_1` width.
    pub n_factors: usize,
    /// `[n_customers, k]`
    pub customer_embedding: Vec<f32>,
    /// `[n_products, k]`
    pub product_embedding: Vec<f32>,
    /// `[2k, k]`
    pub dense_1_kernel: Vec<f32>,
    /// `[k]`
    pub dense_1_bias: Vec<f32>,
    /// `[k, 1]`
    pub dense_2_kernel: Vec<f32>,
    /// `[1]`
    pub dense_2_bias: Vec<f32>,
}

/// Float32 values borrowed from a buffer they may share with other values: `rows` runs of
/// `width` values, run `r` starting at `offset + r·stride`. A plain slice is one run; a column
/// block of a row-major matrix (such as the trainer's tables, whose rows hold a parameter row
/// and its two Adam moments side by side) is one run per row. Writers stream the runs in order,
/// so a view never needs a contiguous copy of what it shows.
#[derive(Debug, Clone, Copy)]
pub struct FloatsView<'a> {
    buffer: &'a [f32],
    rows: usize,
    width: usize,
    stride: usize,
    offset: usize,
}

impl<'a> FloatsView<'a> {
    /// `width` values of each `stride`-long row of `buffer`, from `offset` in the row.
    ///
    /// # Panics
    /// If the runs do not fit in `buffer` or `width + offset > stride` (a caller's bug).
    pub fn strided(buffer: &'a [f32], width: usize, stride: usize, offset: usize) -> Self {
        assert!(
            width + offset <= stride && buffer.len().is_multiple_of(stride.max(1)),
            "{width} values at {offset} do not fit rows of {stride} in {} values",
            buffer.len()
        );
        Self {
            buffer,
            rows: buffer.len() / stride.max(1),
            width,
            stride,
            offset,
        }
    }

    /// How many values the view shows.
    pub fn len(&self) -> usize {
        self.rows * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values, as contiguous runs in order.
    pub fn runs(&self) -> impl Iterator<Item = &'a [f32]> + 'a {
        let Self {
            buffer,
            width,
            stride,
            offset,
            ..
        } = *self;
        (0..self.rows).map(move |row| &buffer[row * stride + offset..][..width])
    }
}

impl<'a> From<&'a [f32]> for FloatsView<'a> {
    /// The whole slice, as one run.
    fn from(values: &'a [f32]) -> Self {
        Self {
            buffer: values,
            rows: 1,
            width: values.len(),
            stride: values.len(),
            offset: 0,
        }
    }
}

/// The parameters borrowed from wherever they live (the trainer's tables, a [`ModelParams`]):
/// what the writers of the eval graph and the checkpoint stream from, without a copy.
#[derive(Debug, Clone, Copy)]
pub struct ParamsView<'a> {
    pub n_customers: usize,
    pub n_products: usize,
    pub n_factors: usize,
    pub customer_embedding: FloatsView<'a>,
    pub product_embedding: FloatsView<'a>,
    pub dense_1_kernel: &'a [f32],
    pub dense_1_bias: &'a [f32],
    pub dense_2_kernel: &'a [f32],
    pub dense_2_bias: &'a [f32],
}

impl<'a> ParamsView<'a> {
    /// The six parameters with their names and shapes, in a fixed order.
    pub fn tensors(&self) -> [(&'static str, Vec<i64>, FloatsView<'a>); 6] {
        let (n_c, n_p, k) = (
            self.n_customers as i64,
            self.n_products as i64,
            self.n_factors as i64,
        );
        [
            (CUSTOMER_EMBEDDING, vec![n_c, k], self.customer_embedding),
            (PRODUCT_EMBEDDING, vec![n_p, k], self.product_embedding),
            (DENSE_1_KERNEL, vec![2 * k, k], self.dense_1_kernel.into()),
            (DENSE_1_BIAS, vec![k], self.dense_1_bias.into()),
            (DENSE_2_KERNEL, vec![k, 1], self.dense_2_kernel.into()),
            (DENSE_2_BIAS, vec![1], self.dense_2_bias.into()),
        ]
    }
}

impl ModelParams {
    pub fn view(&self) -> ParamsView<'_> {
        ParamsView {
            n_customers: self.n_customers,
            n_products: self.n_products,
            n_factors: self.n_factors,
            customer_embedding: self.customer_embedding.as_slice().into(),
            product_embedding: self.product_embedding.as_slice().into(),
            dense_1_kernel: &self.dense_1_kernel,
            dense_1_bias: &self.dense_1_bias,
            dense_2_kernel: &self.dense_2_kernel,
            dense_2_bias: &self.dense_2_bias,
        }
    }

    /// The network's output for one (customer, product) pair, computed in plain Rust: the
    /// reference the exported graphs are tested against.
    pub fn predict(&self, customer: usize, product: usize) -> f32 {
        let k = self.n_factors;
        let mut features = Vec::with_capacity(2 * k);
        features.extend_from_slice(&self.customer_embedding[customer * k..(customer + 1) * k]);
        features.extend_from_slice(&self.product_embedding[product * k..(product + 1) * k]);
        let mut output = self.dense_2_bias[0];
        for unit in 0..k {
            let mut sum = self.dense_1_bias[unit];
            for (input, feature) in features.iter().enumerate() {
                sum += feature * self.dense_1_kernel[input * k + unit];
            }
            output += sum.max(0.0) * self.dense_2_kernel[unit];
        }
        output
    }
}
